// Errors from the server, in words, until dismissed.

import type { Controller } from "../app/controller";

export function Notices({ controller }: { controller: Controller }) {
  return (
    <div class="notices" role="alert" aria-live="assertive">
      {controller.notices.map((notice) => (
        <div key={notice.id} class={`notice ${notice.tone}`}>
          <span class="notice-text">{notice.text}</span>
          <button type="button" class="icon" aria-label="Dismiss" onClick={() => controller.dismiss(notice.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
