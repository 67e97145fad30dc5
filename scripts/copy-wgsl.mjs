// Copies the shaders next to the compiled code: dist/src/gpu/shader-sources.js loads ../../wgsl/*.wgsl.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/wgsl', { recursive: true });
cpSync('wgsl', 'dist/wgsl', { recursive: true });
