// Small DOM helpers every part of the dashboard shares.

export const $ = (id) => document.getElementById(id);

/** h('td', {class: 'x', onclick: f}, child, 'text', [more]) */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Shows `error` (its code and message) in `element`, or hides it. */
export function showError(element, error) {
  if (!error) {
    element.hidden = true;
    element.replaceChildren();
    return;
  }
  const code = error.code ? h('span', { class: 'code' }, error.code) : null;
  element.replaceChildren(code, ' ', error.message ?? String(error));
  element.hidden = false;
}

export const fullTime = (iso) => new Date(iso).toLocaleString();
export const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

export function ago(iso) {
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const timeCell = (iso) => h('time', { datetime: iso, title: fullTime(iso) }, ago(iso));
export const badge = (text, kind = text.toLowerCase(), title = null) =>
  h('span', { class: `badge ${kind}`, title }, text);
