// ESLint (type-aware). workflows/** must stay deterministic: no Node built-ins, no process.env, activities by type only.
import js from '@eslint/js';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.agency/**', 'samples/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'activities/inference/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinModules
            .flatMap((m) => [m, `node:${m}`])
            .map((name) => ({ name, message: 'workflows must be deterministic: no Node built-ins' })),
          patterns: [
            {
              group: ['**/activities/**'],
              allowTypeImports: true,
              message: 'import activities by type only (proxyActivities)',
            },
            {
              group: ['pg', 'express', 'pino', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
              message: 'not workflow-safe',
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process']",
          message: 'workflows must not read process (env, argv, time): pass values in the input',
        },
        {
          selector: "NewExpression[callee.name='Error']",
          message: 'fail a workflow with ApplicationFailure, not Error',
        },
      ],
    },
  },
);
