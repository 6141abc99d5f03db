import { defineConfig } from 'vitest/config';

// The gateway binary embeds `dist/` and serves it at `/` (SPA fallback for every GET outside /api, /v1, /ws).
export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
    emptyOutDir: true,
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
