// Building DOM nodes without HTML strings: every text goes in as a text node, every
// attribute through `setAttribute`, so names from torrents, magnets and users can't inject.

type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  attrs?: Record<string, string>;
}

/** `h('li', {class: 'task'}, h('strong', {text: name}))`. Strings become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) el.setAttribute(k, v);
  if (props.text !== undefined) el.textContent = props.text;
  for (const c of children) if (c) el.append(c);
  return el;
}

/** The element with this id, or an error naming it (the HTML and the code disagree). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

/** Sets a text only when it changed, so screen readers and selections aren't disturbed. */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
