// The input box: Enter sends, Shift+Enter starts a new line.

import type { Ref } from "preact";
import { useEffect, useRef } from "preact/hooks";

interface Props {
  label: string;
  value: string;
  onInput: (value: string) => void;
  onSend: (text: string) => void;
  sendLabel?: string;
  disabled?: boolean;
  /** Why nothing can be sent (shown instead of the box). */
  closedReason?: string;
  placeholder?: string;
  inputRef?: Ref<HTMLTextAreaElement>;
  autoFocus?: boolean;
}

export function Composer(props: Props) {
  const local = useRef<HTMLTextAreaElement>(null);
  const ref = (props.inputRef as { current: HTMLTextAreaElement | null } | undefined) ?? local;

  useEffect(() => {
    if (props.autoFocus && !props.closedReason && window.matchMedia("(min-width: 721px)").matches) {
      ref.current?.focus();
    }
  }, []);

  useEffect(() => {
    // Grow with the text up to the CSS max-height.
    const area = ref.current;
    if (!area) return;
    area.style.height = "auto";
    area.style.height = `${area.scrollHeight}px`;
  }, [props.value]);

  if (props.closedReason) {
    return (
      <div class="composer closed" role="note">
        {props.closedReason}
      </div>
    );
  }

  function submit() {
    const text = props.value.trim();
    if (!text || props.disabled) return;
    props.onSend(text);
  }

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label class="visually-hidden" for="composer-input">
        {props.label}
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        value={props.value}
        placeholder={props.placeholder ?? "Write a message…"}
        aria-describedby="composer-hint"
        onInput={(e) => props.onInput(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <span id="composer-hint" class="visually-hidden">
        Enter sends; Shift+Enter starts a new line.
      </span>
      <button class="primary" type="submit" disabled={props.disabled || !props.value.trim()}>
        {props.sendLabel ?? "Send"}
      </button>
    </form>
  );
}
