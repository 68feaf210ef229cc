import type { Controller } from "../app/controller";
import { useController } from "./hooks";
import { LoginView } from "./LoginView";
import { Shell } from "./Shell";

export function App({ controller }: { controller: Controller }) {
  useController(controller);
  const screen = controller.screen;
  if (screen.kind === "starting") {
    return (
      <div class="splash" role="status">
        Loading Switchboard…
      </div>
    );
  }
  if (screen.kind === "login") return <LoginView controller={controller} notice={screen.notice} />;
  return <Shell controller={controller} />;
}
