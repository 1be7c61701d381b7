/**
 * A share's preview in a main-area tab: the service's rendered notebook in an
 * `<iframe sandbox="allow-scripts">`. Never allow-same-origin: the outputs
 * run in an opaque origin that cannot reach this page, its cookies or the API
 * (the service also sends `Content-Security-Policy: sandbox allow-scripts`).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { hubFacts, serviceUrl } from '../hub';
import { shareIcon } from './icon';
import { type IShare, receivedLine } from './model';

export function previewUrl(share: IShare): string {
  const path = `shares/${encodeURIComponent(share.id)}/preview?version=${share.version}`;
  const facts = hubFacts();
  return facts ? serviceUrl(facts, path) : `/services/mlfactory/${path}`;
}

export class SharePreview extends Widget {
  constructor(share: IShare) {
    super();
    this.addClass('mlfactory-SharePreview');
    this.node.dataset.testid = 'mlfactory-share-preview';
    this.node.dataset.shareId = share.id;
    const header = document.createElement('p');
    header.className = 'mlfactory-SharePreview-header';
    header.textContent = `${share.name} · ${receivedLine(share)}`;
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', 'allow-scripts');
    frame.setAttribute('referrerpolicy', 'no-referrer');
    frame.title = `Preview of ${share.name}`;
    frame.src = previewUrl(share);
    this.node.append(header, frame);
  }
}

export function createPreviewTab(share: IShare): MainAreaWidget<SharePreview> {
  const tab = new MainAreaWidget({ content: new SharePreview(share) });
  tab.id = `mlfactory-share-preview-${share.id}-${share.version}`;
  tab.title.label = `${share.name} (shared by ${share.owner})`;
  tab.title.caption = `Preview of ${share.name}, version ${share.version}, shared by ${share.owner}`;
  tab.title.icon = shareIcon;
  tab.title.closable = true;
  return tab;
}
