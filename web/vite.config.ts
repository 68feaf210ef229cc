/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The gateway embeds `dist/` at compile time, and `npm run check:dist`
// rebuilds and diffs it, so the build must be deterministic: content hashes
// in file names, no timestamps, no source maps (they would only bloat the
// committed bundle).
//
// `npm run dev` serves the page with hot reload and forwards gRPC-Web calls
// to a running gateway (SB_GATEWAY, default http://127.0.0.1:7300), so the
// page still talks to its own origin.
const gateway = process.env.SB_GATEWAY ?? "http://127.0.0.1:7300";

export default defineConfig({
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "^/switchboard\\.v1\\.": { target: gateway, changeOrigin: false },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
