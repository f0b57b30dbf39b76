// Starts panva's oidc-provider on 127.0.0.1 on a free port, for tests.
//
//   node provider.mjs config.json [--exit-with-stdin]
//
// config.json (every member optional but clients):
//   clients         oidc-provider client metadata, as they are
//   resources       resource indicator -> resource server info
//                   (scope, accessTokenFormat 'opaque' or 'jwt', audience,
//                   accessTokenTTL, jwt), returned by getResourceServerInfo
//   extraTokenClaims client_id -> claims added to that client's access
//                   tokens (extraTokenClaims): top-level in a JWT, and in
//                   an opaque token's introspection answer
//   features        feature name -> settings merged over the defaults below
//   ttl             token kind -> seconds (e.g. {"ClientCredentials": 300})
//   enabledJWA      list name -> algorithms, replacing that list of
//                   oidc-provider's enabledJWA (e.g.
//                   {"introspectionSigningAlgValues": ["RS256", "HS256"]})
//
// Once listening it prints one JSON line to stdout:
//   {"issuer":"http://127.0.0.1:PORT","ready":true}
// and it runs until it is killed or, with --exit-with-stdin, until its
// standard input closes (so it never outlives a test process that died
// without killing it). Errors go to stderr.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const cfgPath = process.argv[2];
if (!cfgPath) {
  console.error('usage: node provider.mjs config.json');
  process.exit(2);
}
if (process.argv.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
const resources = cfg.resources ?? {};
const extraClaims = cfg.extraTokenClaims ?? {};

// A signing key made at start: JWT access tokens, and signed
// introspection answers (RS256, the clients' default).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const features = {
  devInteractions: { enabled: false },
  clientCredentials: { enabled: true },
  introspection: { enabled: true },
  jwtIntrospection: { enabled: true },
  revocation: { enabled: true },
  dPoP: { enabled: true },
  resourceIndicators: {
    enabled: true,
    // Tokens are only for the resources the config names.
    async getResourceServerInfo(ctx, resourceIndicator) {
      const info = resources[resourceIndicator];
      if (!info) throw new errors.InvalidTarget();
      return info;
    },
  },
};
for (const [name, settings] of Object.entries(cfg.features ?? {})) {
  features[name] = { ...features[name], ...settings };
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const configuration = {
    clients: cfg.clients ?? [],
    jwks: { keys: [jwk] },
    features,
    async extraTokenClaims(ctx, token) {
      return extraClaims[token.clientId];
    },
  };
  if (cfg.ttl) configuration.ttl = cfg.ttl;
  if (cfg.enabledJWA) configuration.enabledJWA = cfg.enabledJWA;
  const provider = new Provider(issuer, configuration);
  // Server errors (a 500) are logged, so a failing test shows why.
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, ready: true })}\n`);
});
