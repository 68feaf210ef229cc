// Log in or create an account. Errors are the server's words, next to the form.

import { useEffect, useRef, useState } from "preact/hooks";

import type { Controller } from "../app/controller";

export function LoginView({ controller, notice }: { controller: Controller; notice?: string }) {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [userId, setUserId] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);

  useEffect(() => first.current?.focus(), [mode]);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    const failure =
      mode === "login"
        ? await controller.login(userId, password)
        : await controller.register(userId, password, displayName);
    setBusy(false);
    if (failure) setError(failure);
  }

  const registering = mode === "register";
  return (
    <main class="login">
      <div class="login-card">
        <h1 class="brand">
          <span class="brand-mark" aria-hidden="true" />
          Switchboard
        </h1>
        <p class="login-lead">Groups, chats and one-to-many topics, live in one window.</p>
        {notice && (
          <p class="login-notice" role="status">
            {notice}
          </p>
        )}
        <div class="tabs" role="tablist" aria-label="Account">
          <button
            type="button"
            role="tab"
            aria-selected={!registering}
            class={!registering ? "tab active" : "tab"}
            onClick={() => setMode("login")}
          >
            Log in
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={registering}
            class={registering ? "tab active" : "tab"}
            onClick={() => setMode("register")}
          >
            Create account
          </button>
        </div>
        <form onSubmit={submit} aria-label={registering ? "Create account" : "Log in"}>
          <label class="field">
            <span>User id</span>
            <input
              ref={first}
              name="user"
              autocomplete="username"
              autocapitalize="none"
              spellcheck={false}
              required
              value={userId}
              onInput={(e) => setUserId(e.currentTarget.value)}
            />
          </label>
          {registering && (
            <label class="field">
              <span>Display name (optional)</span>
              <input
                name="display-name"
                autocomplete="nickname"
                value={displayName}
                onInput={(e) => setDisplayName(e.currentTarget.value)}
              />
            </label>
          )}
          <label class="field">
            <span>Password</span>
            <input
              name="password"
              type="password"
              autocomplete={registering ? "new-password" : "current-password"}
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          {registering && <p class="hint">User ids are 3–32 characters: a–z, 0–9, “_”, “-”, “.”.</p>}
          {error && (
            <p class="form-error" role="alert">
              {error}
            </p>
          )}
          <button class="primary wide" type="submit" disabled={busy}>
            {busy ? "Please wait…" : registering ? "Create account" : "Log in"}
          </button>
        </form>
      </div>
    </main>
  );
}
