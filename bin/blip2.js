#!/usr/bin/env node
// The `blip2` command. The CLI is TypeScript compiled to dist/ by `npm run build` (run by `prepare`).
import { main } from '../dist/src/cli/main.js';

await main();
