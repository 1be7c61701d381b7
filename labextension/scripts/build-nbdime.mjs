/**
 * Rebuild nbdime's JupyterLab extension (npm `nbdime-jupyterlab`, the same
 * release the nbdime wheel ships prebuilt) against the JupyterLab installed
 * here, into build/nbdime-jupyterlab.
 *
 * Why: the prebuilt copy in the nbdime wheel was built against JupyterLab 4.5
 * and asks for the shared singleton @jupyter/ydoc ^3, while JupyterLab 4.6
 * (and real-time collaboration) share @jupyter/ydoc 4: every Lab load warned
 * "Unsatisfied version ... @jupyter/ydoc (required ^3.0.0-a3)". Built here,
 * its shared packages resolve to the versions this Lab provides. The server
 * extension puts its folder first in LabApp.extra_labextensions_path
 * (server_ext/app.py); drop it once nbdime ships a build for @jupyter/ydoc 4.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const source = dirname(require.resolve('nbdime-jupyterlab/package.json'));
// Staged under build/ so that its imports resolve from this package's
// node_modules (the JupyterLab 4.6 packages), not from nbdime's own.
const stage = join('build', 'nbdime-jupyterlab-src');
const output = join('build', 'nbdime-jupyterlab');

rmSync(stage, { recursive: true, force: true });
rmSync(output, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
for (const folder of ['lib', 'style', 'schema']) {
  cpSync(join(source, folder), join(stage, folder), { recursive: true });
}
// The npm package has the stylesheet but not the style module Lab loads.
writeFileSync(join(stage, 'style', 'index.js'), "import './index.css';\n");

const pkg = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
pkg.jupyterlab.outputDir = '../nbdime-jupyterlab';
delete pkg.scripts;
// Built with this package's builder and dependencies (JupyterLab's builder
// installs them itself when it finds no node_modules).
const own = JSON.parse(readFileSync('package.json', 'utf8'));
pkg.devDependencies = {
  '@jupyterlab/builder': own.devDependencies['@jupyterlab/builder']
};
writeFileSync(join(stage, 'package.json'), JSON.stringify(pkg, null, 2));
symlinkSync(join('..', '..', 'node_modules'), join(stage, 'node_modules'));

execFileSync('jupyter', ['labextension', 'build', stage], { stdio: 'inherit' });
rmSync(stage, { recursive: true, force: true });
