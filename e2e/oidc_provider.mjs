// A real OpenID Connect provider for the browser tests: panva's oidc-provider (pinned in
// package.json), on loopback. Usage: node e2e/oidc_provider.mjs PORT REDIRECT_URI
// Any account name signs in with the password "pw"; the account "boss" has the role claim
// "admin", every other "viewer". Prints "ready" once it listens.
import http from "node:http";
import { URLSearchParams } from "node:url";
import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const roleOf = (name) => (name === "boss" ? "admin" : "viewer");

const provider = new Provider(issuer, {
  clients: [{
    client_id: "jobwarden",
    client_secret: "jobwarden-test-secret",
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  pkce: { required: () => true },
  claims: { openid: ["sub"], profile: ["preferred_username", "jobwarden_role"] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, preferred_username: sub, jobwarden_role: roleOf(sub) }),
  }),
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ["test-only-cookie-key"] },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

async function body(req) {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

// The provider's own sign-in and consent, as plainly as a test needs them.
const server = http.createServer(async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!match) return provider.callback()(req, res);
  const details = await provider.interactionDetails(req, res);
  if (req.method === "GET") {
    res.setHeader("Content-Type", "text/html");
    return res.end(`<!doctype html><title>Provider sign-in</title><form method="post" action="/interaction/${details.uid}/login">
      <label>Account <input name="login"></label><label>Password <input name="password" type="password"></label>
      <button type="submit">Sign in at the provider</button></form>`);
  }
  const form = await body(req);
  if (form.get("password") !== "pw") {
    res.statusCode = 401;
    return res.end("wrong password");
  }
  const grant = new provider.Grant({ accountId: form.get("login"), clientId: details.params.client_id });
  grant.addOIDCScope("openid profile");
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: form.get("login") }, consent: { grantId } }, { mergeWithLastSubmission: false });
});
server.listen(Number(port), "127.0.0.1", () => console.log("ready"));
