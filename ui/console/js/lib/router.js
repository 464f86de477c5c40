// Client-side routes under /console/ (the server answers index.html for any path
// without a file extension). Filters live in the query string so a view can be
// bookmarked or shared; the token never does.

import { html, useEffect, useState } from "./html.js";

export const BASE = "/console";
const listeners = new Set();

export function currentRoute() {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "/";
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(location.search), path: path || "/" };
}

export function href(path, query) {
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString() : "";
  return `${BASE}${path.startsWith("/") ? path : `/${path}`}${q ? `?${q}` : ""}`;
}

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const fn of listeners) fn();
  if (!replace) window.scrollTo(0, 0);
}

/** Replaces the query string of the current view (filters), without a new history entry. */
export function setQuery(query) {
  navigate(href(currentRoute().path, query), { replace: true });
}

addEventListener("popstate", () => {
  for (const fn of listeners) fn();
});

export function useRoute() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const fn = () => setRoute(currentRoute());
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return route;
}

/** An in-app link: a real <a href> (opens in a new tab, copyable), navigated in place on a plain click. */
export function Link({ to, query, children, class: cls, ...rest }) {
  const url = typeof to === "string" && to.startsWith(BASE) ? to : href(to, query);
  const onClick = (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(url);
  };
  return html`<a href=${url} class=${cls} onClick=${onClick} ...${rest}>${children}</a>`;
}
