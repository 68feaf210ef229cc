// Times and names as people read them.

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

export function shortTime(ms: number, now = Date.now()): string {
  if (!ms) return "";
  const date = new Date(ms);
  const today = new Date(now);
  return date.toDateString() === today.toDateString() ? time.format(date) : day.format(date);
}

export function fullTime(ms: number): string {
  return ms ? new Date(ms).toLocaleString() : "";
}

/** "ann, ben and 2 others" */
export function listNames(names: string[], max = 3): string {
  if (names.length <= max) {
    return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : (names[0] ?? "");
  }
  const rest = names.length - max;
  return `${names.slice(0, max).join(", ")} and ${rest} ${rest === 1 ? "other" : "others"}`;
}

/** Splits "ann, ben  carol" into ids. */
export function parseIds(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
}
