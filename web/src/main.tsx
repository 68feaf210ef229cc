// Entry point: one controller for the page, talking gRPC-Web to the gateway
// that served it (same origin), or, when the page is hosted elsewhere, to the
// gateway its index.html names:
//   <meta name="switchboard-server" content="https://chat.example.com">
// (that gateway must allow this page's origin: --allowed-origins).

import { render } from "preact";

import { Controller } from "./app/controller";
import { App } from "./ui/App";
import "./ui/styles.css";

const named = document.querySelector<HTMLMetaElement>('meta[name="switchboard-server"]')?.content.trim();
const controller = new Controller(named || window.location.origin);

document.addEventListener("visibilitychange", () => {
  controller.setVisible(document.visibilityState !== "hidden");
});
window.addEventListener("online", () => controller.networkBack());
window.addEventListener("pagehide", () => controller.flushCursors());

render(<App controller={controller} />, document.getElementById("app")!);
void controller.boot();
