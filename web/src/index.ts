// The index page: account state, the submit form, the live task list and the node list
// (`index/`: a module each, sharing `page.ts`'s elements and state).
//
// Every string that comes from a torrent, a magnet, a node or a user reaches the DOM as a
// text node or a plain attribute (see `dom.ts`); the page never parses HTML from data.

import { setText } from './dom';
import { onLocaleChange } from './locale';
import { refreshAccount, renderAccount } from './index/account';
import { rerenderNodes, refreshNodes } from './index/nodes';
import { el } from './index/page';
import './index/submit';
import { refreshTasks, renderAllTasks } from './index/tasks';

const NODES_EVERY_MS = 5_000;
const TASKS_EVERY_MS = 10_000;

// Another language: everything rendered from data is rendered again (the static texts are
// `locale.ts`'s); messages of earlier actions are cleared rather than left in the other one.
onLocaleChange(() => {
  for (const p of [el.submitStatus, el.submitError, el.authError, el.addUserStatus, el.announce]) setText(p, '');
  renderAccount();
  renderAllTasks();
  rerenderNodes();
});

void refreshAccount(); // also opens the event stream once it is known who may read it
void refreshNodes();
void refreshTasks();
window.setInterval(() => void refreshNodes(), NODES_EVERY_MS);
window.setInterval(() => void refreshTasks(), TASKS_EVERY_MS);
