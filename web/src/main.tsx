// Entry point: one controller for the page, talking gRPC-Web to the gateway
// that served it (same origin).

import { render } from "preact";

import { Controller } from "./app/controller";
import { App } from "./ui/App";
import "./ui/styles.css";

const controller = new Controller(window.location.origin);

document.addEventListener("visibilitychange", () => {
  controller.setVisible(document.visibilityState !== "hidden");
});
window.addEventListener("online", () => controller.networkBack());
window.addEventListener("pagehide", () => controller.flushCursors());

render(<App controller={controller} />, document.getElementById("app")!);
void controller.boot();
