/**
 * A component's page: its facts, inputs and outputs, example and README
 * hosts, version history and the Insert button. Pure DOM building; the page
 * view (pageView.ts) owns the state, the renderers and what the actions do.
 */
import { button, h, stabilityBadge, table } from './dom';
import { sourceLabel } from './labels';
import type { IComponentDetail, IInputPort } from './types';

/** What the page's controls do; the page view supplies them. */
export interface IPageActions {
  openVersion(version: string): void;
  browseCategory(category: string): void;
  insert(ref: string, message: HTMLElement): void;
}

/** The page's nodes, and the parts the view fills or updates later. */
export interface IComponentPage {
  nodes: Node[];
  insertButton: HTMLButtonElement;
  /** Hosts for the rendered example and README (filled once in the document). */
  example: HTMLElement;
  readme: HTMLElement;
}

export function componentPage(
  d: IComponentDetail,
  actions: IPageActions
): IComponentPage {
  const ref = refOf(d);

  const versions = uniq([
    d.version,
    ...(d.versions ?? []),
    ...(d.history ?? []).map(v => v.version)
  ]);
  const picker = h('select', {
    className: 'jp-mod-styled mlfactory-Components-versionPicker',
    testid: 'components-version',
    attrs: { 'aria-label': 'Version' }
  });
  for (const version of versions) {
    const option = h('option', { text: version, attrs: { value: version } });
    option.selected = version === d.version;
    picker.append(option);
  }
  picker.addEventListener('change', () => actions.openVersion(picker.value));

  const message = h('div', {
    className: 'mlfactory-Components-message',
    attrs: { 'aria-live': 'polite' }
  });
  const insertButton = button('Insert', () => actions.insert(ref, message), {
    kind: 'accept',
    className: 'mlfactory-Components-insert',
    testid: 'components-insert'
  });

  const facts = h('dl', { className: 'mlfactory-Components-facts' });
  addFact(facts, 'Reference', h('code', { text: ref }), 'components-ref');
  addFact(facts, 'Owners', (d.owners ?? []).join(', '), 'components-owners');
  addFact(
    facts,
    'Source',
    sourceLabel(d.source, d.source_kind),
    'components-source'
  );
  addFact(facts, 'Last verified', d.last_verified, 'components-verified');
  addFact(
    facts,
    'Categories',
    h(
      'span',
      { className: 'mlfactory-Components-chips' },
      ...(d.categories ?? []).map(category =>
        button(category, () => actions.browseCategory(category), {
          kind: 'link',
          className: 'mlfactory-Components-chip',
          title: `Browse the category ${category}`
        })
      )
    )
  );
  if (d.tags?.length) {
    addFact(facts, 'Tags', d.tags.join(', '));
  }
  if (d.requirements?.length) {
    addFact(facts, 'Requirements', d.requirements.join(', '));
  }
  addFact(facts, 'Entry point', h('code', { text: d.entry_point }));

  const example = h('div', {
    className: 'mlfactory-Components-example',
    testid: 'components-example'
  });
  const readme = h('div', {
    className: 'mlfactory-Components-readme',
    testid: 'components-readme'
  });

  const nodes = present([
    h(
      'div',
      { className: 'mlfactory-Components-pageHeader' },
      h('h3', {
        className: 'mlfactory-Components-title',
        text: d.name,
        attrs: { tabindex: '-1' }
      }),
      picker,
      stabilityBadge(d.stability)
    ),
    h('p', {
      className: 'mlfactory-Components-pageSummary',
      text: d.summary,
      testid: 'components-summary'
    }),
    h('div', { className: 'mlfactory-Components-actions' }, insertButton),
    message,
    facts,
    d.description
      ? section(
          'Description',
          ...paragraphs(d.description, 'mlfactory-Components-description')
        )
      : null,
    section('Inputs', inputsTable(d.inputs ?? [])),
    section('Outputs', outputsTable(d.outputs ?? [])),
    d.example ? section('Example', example) : null,
    d.readme ? section('README', readme) : null,
    section('Versions', historyTable(d, actions))
  ]);
  return { nodes, insertButton, example, readme };
}

function historyTable(d: IComponentDetail, actions: IPageActions): HTMLElement {
  const history = d.history ?? [];
  if (!history.length) {
    return h('p', { text: d.version });
  }
  return table(
    ['Version', 'Stability', 'Verified', 'Source'],
    history.map(entry => [
      entry.version === d.version
        ? h('strong', { text: `${entry.version} (shown)` })
        : button(entry.version, () => actions.openVersion(entry.version), {
            kind: 'link',
            className: 'mlfactory-Components-link',
            title: `Show ${d.name}@${entry.version}`
          }),
      stabilityBadge(entry.stability),
      entry.last_verified,
      entry.source
    ]),
    'mlfactory-Components-history'
  );
}

/** The exact reference of a component version: `name@x.y.z`. */
export function refOf(c: { name: string; version: string }): string {
  return `${c.name}@${c.version}`;
}

/** How a default reads in Python: None, True, 0.2, 'text', [1, 2]. */
export function pythonLiteral(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  return JSON.stringify(value) ?? String(value);
}

function inputsTable(inputs: IInputPort[]): HTMLElement {
  if (!inputs.length) {
    return h('p', { text: 'None.' });
  }
  return table(
    ['Input', 'Description'],
    inputs.map(port => {
      const required = port.required ?? !('default' in port);
      return [
        portName(port),
        h(
          'span',
          {},
          port.description,
          required
            ? h('div', {
                className: 'mlfactory-Components-required',
                text: 'required'
              })
            : h(
                'div',
                { className: 'mlfactory-Components-muted' },
                'default ',
                h('code', { text: pythonLiteral(port.default) })
              )
        )
      ];
    }),
    'mlfactory-Components-inputs'
  );
}

function outputsTable(
  outputs: { name: string; type: string; description: string }[]
): HTMLElement {
  if (!outputs.length) {
    return h('p', { text: 'None.' });
  }
  return table(
    ['Output', 'Description'],
    outputs.map(port => [portName(port), port.description]),
    'mlfactory-Components-outputs'
  );
}

/** The port's name (code) over its type. */
function portName(port: { name: string; type: string }): HTMLElement {
  return h(
    'span',
    {},
    h('code', { text: port.name }),
    h('div', { className: 'mlfactory-Components-muted', text: port.type })
  );
}

function section(title: string, ...content: Node[]): HTMLElement {
  return h(
    'section',
    { className: 'mlfactory-Components-section' },
    h('h4', { text: title }),
    ...content
  );
}

function addFact(
  list: HTMLElement,
  label: string,
  value: string | Node,
  testid?: string
): void {
  list.append(h('dt', { text: label }), h('dd', { testid }, value));
}

/** Text split at blank lines into <p>s; single line breaks are reflowed. */
function paragraphs(text: string, className: string): HTMLElement[] {
  return text
    .split(/\n\s*\n/)
    .map(part => part.trim())
    .filter(Boolean)
    .map(part => h('p', { className, text: part.replace(/\s*\n\s*/g, ' ') }));
}

function present(nodes: (Node | null)[]): Node[] {
  return nodes.filter((node): node is Node => node !== null);
}

function uniq(values: string[]): string[] {
  return [...new Set(values.filter(Boolean))];
}
