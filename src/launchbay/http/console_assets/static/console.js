// Live logs: a <pre data-stream=URL> follows the API's Server-Sent Events stream, one line per
// message, until the stream says `done` (a deployment ended, a container stopped). The
// browser's EventSource resumes with Last-Event-ID after a dropped connection.
"use strict";
function followLogs(pre) {
  const source = new EventSource(pre.dataset.stream);
  const append = (text, cls) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const line = document.createElement("span");
    line.textContent = text + "\n";
    if (cls) line.className = cls;
    pre.appendChild(line);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  source.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (pre.dataset.kind === "deployment") {
      const ev = m.event;
      append(`${ev.emittedAt.slice(11, 19)} ${ev.phase.padEnd(8)} ${ev.summary}`, `level-${ev.level}`);
    } else {
      append(`${m.timestamp.slice(11, 19)} ${m.message}`, m.stream === "stderr" ? "stream-stderr" : "");
    }
  };
  source.onerror = () => {  // a refused stream (nothing running) is not tried again
    if (source.readyState === EventSource.CLOSED) append("-- nothing to follow now --", "muted");
  };
  source.addEventListener("done", () => {
    source.close();
    pre.dataset.done = "true";
    append(pre.dataset.kind === "deployment" ? "-- the deployment ended --" : "-- the release stopped --", "muted");
    document.body.dispatchEvent(new Event("deployment-done"));
  });
}
// No inline handlers (the pages' Content-Security-Policy allows none): forms that ask before
// they are sent, and selects that send their form when changed.
document.addEventListener("submit", (e) => {
  const question = e.target.dataset.confirm;
  if (question && !confirm(question)) e.preventDefault();
});
document.addEventListener("change", (e) => {
  if (e.target.matches("select[data-submit-on-change]")) e.target.form.submit();
});
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("pre[data-stream]").forEach(followLogs);
});
