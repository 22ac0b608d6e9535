import uWS from 'uWebSockets.js';
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * The suite runs on the Node that package.json's `engines` names, and so does every process it
 * starts: children spawned with `process.execPath`, and those started through `npm`/`node` on PATH
 * (`npm start` in start-stop.test.ts). A CI that installed Node 22 but left the machine's Node 20
 * first on PATH would otherwise pass half the suite on each.
 */
const engines = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } }).engines
  .node;

describe('runtime', () => {
  it('is a Node that package.json engines accepts', () => {
    const range = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(engines);
    if (!range) throw new Error(`engines.node is ${engines}: teach this test its form (it reads ^MAJOR.MINOR.PATCH)`);
    const [major, minor, patch] = process.versions.node.split('.').map(Number) as [number, number, number];
    const [, wantMajor, wantMinor, wantPatch] = range.map(Number) as [number, number, number, number];
    const ok = major === wantMajor && (minor > wantMinor || (minor === wantMinor && patch >= wantPatch));
    expect(ok, `node ${process.versions.node} does not satisfy engines ${engines} (scripts/install-node.sh)`).toBe(true);
  });

  it('is the `node` first on PATH, and the one npm runs on', () => {
    const self = realpathSync(process.execPath);
    const onPath = execFileSync('node', ['-p', 'process.execPath'], { encoding: 'utf8' }).trim();
    expect(realpathSync(onPath), 'put the directory of this node first on PATH').toBe(self);
    // Set by npm for `npm test`/`npm run`: the node npm itself runs on.
    const npmNode = process.env.npm_node_execpath;
    if (npmNode) expect(realpathSync(npmNode), 'npm runs on another node: put this one first on PATH').toBe(self);
  });

  it('loads the native uWebSockets.js build (publish and WebSocket upgrade exist)', () => {
    const app = uWS.App();
    try {
      expect(typeof app.publish).toBe('function');
      expect(typeof app.ws).toBe('function');
      expect(uWS.us_socket_local_port).toBeTypeOf('function');
    } finally {
      app.close();
    }
  });
});
