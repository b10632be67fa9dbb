// A plain EventSource subscriber, using the npm `eventsource` package as any Node
// user would: it reconnects by itself after the server closes the stream, sending the
// last id it saw as Last-Event-ID. No de-duplication here: what it prints is what the
// server delivered.
//
// Usage: node eventsource-subscriber.cjs URL WANT TIMEOUT_MS
// Needs FIREHOSE_NODE_MODULES (the folder holding eventsource/), set by the test.
// Prints `connected` on every (re)connect, `bounty <id>` per bounty, `error <code>` per
// error frame, then `done`.
const path = require("node:path");
const { EventSource } = require(path.join(process.env.FIREHOSE_NODE_MODULES, "eventsource"));

const [url, want, timeoutMs] = process.argv.slice(2);
const source = new EventSource(url);
let received = 0;

function finish() {
  source.close();
  console.log("done");
  process.exit(0);
}

source.addEventListener("connected", () => console.log("connected"));
source.addEventListener("bounty", (event) => {
  console.log(`bounty ${JSON.parse(event.data).id}`);
  received += 1;
  if (received >= Number(want)) finish();
});
source.addEventListener("error", (event) => {
  // An `event: error` frame from the server carries data; the stream goes on.
  if (event.data) {
    console.log(`error ${JSON.parse(event.data).code}`);
    return;
  }
  // A close by the server is an error event followed by a reconnect; a refused
  // connection (4xx) closes the source for good.
  if (source.readyState === EventSource.CLOSED) {
    console.log(`closed ${event.code ?? ""} ${event.message ?? ""}`);
    process.exit(1);
  }
});
setTimeout(finish, Number(timeoutMs));
