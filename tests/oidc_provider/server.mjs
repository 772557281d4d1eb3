// A real OpenID Connect provider for launchbay's tests, on loopback only.
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (JSON list),
// ACCOUNTS (JSON: {"alice": ["team-a"], ...}: username -> groups).
// Login is oidc-provider's development form (any password); consent is granted at once.
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS || "{}");

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: JSON.parse(process.env.REDIRECT_URIS),
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  scopes: ["openid", "profile", "email", "groups"],
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name"],
    email: ["email", "email_verified"],
    groups: ["groups"],
  },
  conformIdTokenClaims: false, // scope claims in the id_token, as most providers do
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    if (!(id in accounts)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id,
                 email: `${id}@example.com`, email_verified: true, groups: accounts[id] };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
});
provider.listen(port, "127.0.0.1", () => console.log(`oidc-provider ready at ${issuer}`));
