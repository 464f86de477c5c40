// Times: the API speaks RFC 3339 in UTC; people read their own zone.

const fmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export const localTime = (iso) => (iso ? fmt.format(new Date(iso)) : "");

/** "2026-12-02 16:07:01.123 UTC" */
export const utcTime = (iso) => (iso ? `${new Date(iso).toISOString().replace("T", " ").replace("Z", "")} UTC` : "");

export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 0) return `in ${fmtDur(-s)}`;
  if (s < 5) return "just now";
  return `${fmtDur(s)} ago`;
}

function fmtDur(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** A Date as the value of an <input type="datetime-local"> (the viewer's zone). */
export function toLocalInput(date) {
  if (!date) return "";
  const d = new Date(date);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** An <input type="datetime-local"> value (the viewer's zone) as a Date, or null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export const zoneName = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
