// The stream's state in words: live, syncing, reconnecting in N s.

import type { Controller } from "../app/controller";
import { useTicker } from "./hooks";

export function ConnectionStatus({ controller }: { controller: Controller }) {
  const state = controller.connection;
  useTicker(1000, state.phase === "waiting");
  let text: string;
  let tone: "ok" | "busy" | "down";
  switch (state.phase) {
    case "live":
      text = "Connected";
      tone = "ok";
      break;
    case "syncing":
      text = "Catching up…";
      tone = "busy";
      break;
    case "connecting":
      text = state.attempt === 0 ? "Connecting…" : "Reconnecting…";
      tone = "busy";
      break;
    case "waiting": {
      const seconds = Math.max(0, Math.ceil((state.retryAtMs - Date.now()) / 1000));
      text = seconds > 0 ? `Offline, reconnecting in ${seconds} s` : "Reconnecting…";
      tone = "down";
      break;
    }
    default:
      text = "Offline";
      tone = "down";
  }
  return (
    <div class={`connection ${tone}`} data-phase={state.phase}>
      <span class="dot" aria-hidden="true" />
      <span role="status" aria-live="polite" title={state.phase === "waiting" ? `Lost: ${state.reason}` : undefined}>
        {text}
      </span>
      {state.phase === "waiting" && (
        <button type="button" class="link" onClick={() => controller.networkBack()}>
          Retry now
        </button>
      )}
    </div>
  );
}
