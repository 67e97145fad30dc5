// Prepares everything a GPU machine without Node or npm needs to run the benchmarks (bench/device/run.sh):
// esbuild bundles of bench/kernels.ts (its cases included, from bench/cases/index.ts), bench/model.ts, the Node
// platform module and the Node image decoder (the --browser driver stays out: no browser there), a trimmed `webgpu`
// package, `sharp` with its libvips for the decoder (xz-compressed tar) and an xz-compressed Node binary. Output:
// .dev/ (git-ignored), carried to the device with the call.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const out = '.dev';
rmSync(`${out}/b`, { recursive: true, force: true });
mkdirSync(`${out}/b`, { recursive: true });
rmSync(`${out}/platform`, { recursive: true, force: true });
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', external: ['webgpu', 'sharp', 'playwright-core', 'esbuild', './browser-driver.js'], logLevel: 'warning',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } };
// parity.ts uses test/support's helpers, whose modules also import vitest's expect (not on the device).
await build({ ...common, alias: { vitest: './bench/device/no-vitest.ts' }, entryPoints: { kernels: 'bench/kernels.ts', model: 'bench/model.ts', 'random-checkpoint': 'bench/random-checkpoint.ts', probe: 'bench/device/probe.ts', parity: 'bench/device/parity.ts' }, outdir: `${out}/b`, outExtension: { '.js': '.mjs' } });
// getPlatform() imports './node.js' next to itself; defaultImageDecoder() imports '../platform/image-node.js'.
await build({ ...common, entryPoints: { node: 'src/platform/node.ts' }, outdir: `${out}/b` });
await build({ ...common, entryPoints: { 'image-node': 'src/platform/image-node.ts' }, outdir: `${out}/platform` });
writeFileSync(`${out}/platform/package.json`, '{"type":"module"}\n');
writeFileSync(`${out}/b/package.json`, '{"type":"module"}\n');

const w = `${out}/node_modules/webgpu`;
mkdirSync(`${w}/dist/linux-x64`, { recursive: true });
copyFileSync('node_modules/webgpu/index.js', `${w}/index.js`);
copyFileSync('node_modules/webgpu/package.json', `${w}/package.json`);
execFileSync('sh', ['-c', `xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > ${out}/dawn.node.xz`]);
// sharp and what it loads at run time (its JavaScript dependencies, the native binding and libvips), unpacked by
// run.sh into .dev/node_modules.
const sharpPackages = ['sharp', 'detect-libc', 'semver', '@img/colour', '@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64'];
execFileSync('sh', ['-c', `tar -C node_modules -cf - ${sharpPackages.join(' ')} | xz -T2 -6 > ${out}/sharp.tar.xz`]);
execFileSync('sh', ['-c', `[ -f ${out}/node.xz ] || xz -T2 -6 -c "$(command -v node)" > ${out}/node.xz`]);
console.log('device bundle ready in .dev/');
