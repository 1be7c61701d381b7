// Lint rules for the mlfactory labextension (TypeScript, flat config).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['build/', 'lib/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    rules: {
      curly: 'error',
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      // JupyterLab's convention: options and IDs live in a namespace.
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/naming-convention': [
        'error',
        {
          selector: 'interface',
          format: ['PascalCase'],
          custom: { regex: '^I[A-Z]', match: true }
        }
      ],
      // Server data reaches the DOM through textContent only.
      'no-restricted-properties': [
        'error',
        { property: 'innerHTML', message: 'Use textContent.' },
        { property: 'outerHTML', message: 'Use textContent.' },
        { property: 'insertAdjacentHTML', message: 'Build nodes instead.' }
      ]
    }
  }
);
