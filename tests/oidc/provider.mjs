// A real OpenID Connect provider for the tests: the certified npm `oidc-provider`, on loopback.
//
//   node provider.mjs --port PORT --modules DIR
//   (DIR: the node_modules holding oidc-provider; env OIDC_CLIENTS: JSON list of clients)
//
// Prints "ready <issuer>" once it listens. Test accounts are changed over HTTP on the same
// port (loopback only, test-only routes under /__test__/):
//   PUT /__test__/accounts/<id>  {"claims": {...}, "fault": null | "wrong-audience" |
//                                  "expired" | "wrong-issuer" | "foreign-key"}
// A fault makes the token endpoint hand out an ID token with that defect, signed with the
// provider's own key (except "foreign-key"): what a misbehaving or hostile provider sends.
import http from "node:http";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: { port: { type: "string" }, modules: { type: "string" } },
});
// oidc-provider is installed outside the source tree (make test puts it in .venv/oidc).
const requireFrom = createRequire(
  join(resolve(args.modules), "resolve-from-here.js"),
);
const load = async (name) =>
  import(pathToFileURL(requireFrom.resolve(name)).href);
const { default: Provider } = await load("oidc-provider");
const { SignJWT, decodeJwt, exportJWK, generateKeyPair } = await load("jose");

const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OIDC_CLIENTS || "[]");

const KID = "test-signing-key";
const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const signingJwk = {
  ...(await exportJWK(privateKey)),
  kid: KID,
  alg: "RS256",
  use: "sig",
};
const foreign = (await generateKeyPair("RS256")).privateKey;

// id -> { claims, fault }
const accounts = new Map();

const SCOPES = ["openid", "offline_access", "email", "profile", "groups"];

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: ["mlfactory-test-cookie-key"] },
  scopes: SCOPES,
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
    groups: ["groups"],
  },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({ sub: id, ...account.claims }),
    };
  },
  // First-party client: no consent screen, every requested scope is granted.
  async loadExistingGrant(ctx) {
    const grantId =
      ctx.oidc.result?.consent?.grantId ||
      ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPES.join(" "));
    await grant.save();
    return grant;
  },
});

function faulty(payload, fault) {
  const now = Math.floor(Date.now() / 1000);
  switch (fault) {
    case "wrong-audience":
      return { ...payload, aud: "some-other-application" };
    case "expired":
      return { ...payload, iat: now - 7200, exp: now - 3600 };
    case "wrong-issuer":
      return { ...payload, iss: "http://127.0.0.1:1/not-the-issuer" };
    default:
      return payload;
  }
}

provider.use(async (ctx, next) => {
  await next();
  const body = ctx.body;
  if (ctx.oidc?.route !== "token" || !body?.id_token) return;
  const payload = decodeJwt(body.id_token);
  const fault = accounts.get(payload.sub)?.fault;
  if (!fault) return;
  const key = fault === "foreign-key" ? foreign : privateKey;
  body.id_token = await new SignJWT(faulty(payload, fault))
    .setProtectedHeader({ alg: "RS256", kid: KID, typ: "JWT" })
    .sign(key);
});

const handle = provider.callback();

function testRoute(req, res) {
  const match = /^\/__test__\/accounts\/([A-Za-z0-9_.@-]+)$/.exec(req.url);
  if (!match || req.method !== "PUT") {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const { claims = {}, fault = null } = JSON.parse(body || "{}");
    accounts.set(match[1], { claims, fault });
    res.writeHead(204).end();
  });
}

http
  .createServer((req, res) =>
    req.url.startsWith("/__test__/") ? testRoute(req, res) : handle(req, res),
  )
  .listen(port, "127.0.0.1", () => console.log(`ready ${issuer}`));
