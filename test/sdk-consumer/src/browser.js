// @ts-check
/**
 * The SDK in a page: bundled for browsers by test/integration/sdk-package.test.ts (esbuild,
 * platform browser), which fails on any import a browser cannot load (a Node module).
 */
import { connect, FluxoHttp } from '@fluxo/sdk';

// In a page served by Fluxo: the session cookie is the credential.
const client = connect({ url: location.origin });
const http = new FluxoHttp({ url: location.origin });
client.on('state', (s) => {
  document.body.dataset.state = s.state;
});
http.me().then((me) => {
  document.title = `Fluxo — ${me.userId}`;
});
