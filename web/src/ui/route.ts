// The open conversation lives in the address, so a reload (or the back
// button) comes back to it: /c/<conversation id> or /topic/<topic id>.
// The gateway serves the page for any path without a file extension.

import type { Place } from "../state/sidebar";

export function placeFromPath(pathname: string): Place | undefined {
  const match = /^\/(c|topic)\/([^/]+)$/.exec(pathname);
  if (!match) return undefined;
  const id = decodeURIComponent(match[2]!);
  return match[1] === "c" ? { kind: "conversation", id } : { kind: "topic", id };
}

export function pathOf(place: Place | undefined): string {
  if (!place) return "/";
  return place.kind === "conversation" ? `/c/${encodeURIComponent(place.id)}` : `/topic/${encodeURIComponent(place.id)}`;
}
