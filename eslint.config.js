import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'bpf/.output/',
      'native/build/',
      '.tracefeed/',
      'src/wire/layout.generated.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The cluster side (features, agent, controller, console) and the wire it
    // shares with the node read src/wire, never the node runtime in src/ingest.
    files: [
      'src/wire/**/*.ts',
      'src/families/**/*.ts',
      'src/features/**/*.ts',
      'src/agent/**/*.ts',
      'src/console/**/*.ts',
      'src/eval/**/*.ts',
      'src/common/**/*.ts',
      'src/feedback/**/*.ts',
    ],
    // The feedback worker runs on the node: it drives the probe controller.
    ignores: ['src/feedback/node-worker.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/ingest/*'],
              allowTypeImports: true,
              message:
                'the cluster side and the wire import src/wire, not the node runtime (src/ingest); type imports only',
            },
          ],
        },
      ],
    },
  },
);
