// Drives Debian's Chromium for tests/board_browser.rs, through playwright-core (the
// DevTools protocol; playwright-core never downloads a browser of its own). A thin
// remote control: the Rust test sends one JSON command per line on stdin and gets one
// JSON answer per line on stdout; every assertion is the test's.
//
// Usage: node board-driver.cjs
// Needs FIREHOSE_NODE_MODULES (the folder holding playwright-core/) and
// FIREHOSE_TEST_CHROMIUM (the browser's path), both set by scripts/test.
//
// Commands:
//   {"op":"open","url":"..."}  load the page; answers {"ok":true,"status":200}
//   {"op":"apply","fields":{"f-category":"rust",...}}
//                              fill the filter form's fields (by id), press Apply and
//                              wait for the page it loads; answers {"ok":true,"url":...}
//   {"op":"click","selector":"#more"}
//                              click an element
//   {"op":"board"}             what the page shows: the connection state, the notice,
//                              the form's values and every card in page order
//   {"op":"quit"}              close the browser and exit
// Every answer also carries `problems`: console errors, page errors and
// content-security-policy violations since the last answer, so the test can insist
// there were none.
const path = require("node:path");
const readline = require("node:readline");
const { chromium } = require(path.join(process.env.FIREHOSE_NODE_MODULES, "playwright-core"));

// The flags this machine needs (docs/board.md, "The test"): no sandbox as
// root, no GPU, and nothing that phones home: the closed network refuses it, many
// connections at a time, and QUIC probes time out. playwright-core adds --headless
// and a fresh, throw-away --user-data-dir itself.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function reply(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.FIREHOSE_TEST_CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  const page = await browser.newPage();
  let problems = [];
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      problems.push(`console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  // Violations are reported in the page; a listener there collects them.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
    });
  });

  const take = async () => {
    let violations = [];
    try {
      violations = await page.evaluate(() => (window.__cspViolations || []).splice(0));
    } catch (error) {
      violations = [`cannot read violations: ${error.message}`];
    }
    const out = problems.concat(violations.map((text) => `csp: ${text}`));
    problems = [];
    return out;
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let command;
    try {
      command = JSON.parse(line);
    } catch (error) {
      reply({ ok: false, error: `not JSON: ${line}` });
      continue;
    }
    try {
      if (command.op === "open") {
        const response = await page.goto(command.url, { waitUntil: "load" });
        reply({
          ok: true,
          status: response ? response.status() : null,
          headers: response ? await response.allHeaders() : {},
          problems: await take(),
        });
      } else if (command.op === "apply") {
        for (const [id, value] of Object.entries(command.fields || {})) {
          await page.fill(`#${id}`, value);
        }
        await Promise.all([
          page.waitForNavigation({ waitUntil: "load" }),
          page.click("#filter button[type=submit]"),
        ]);
        reply({ ok: true, url: page.url(), problems: await take() });
      } else if (command.op === "click") {
        await page.click(command.selector);
        reply({ ok: true, problems: await take() });
      } else if (command.op === "board") {
        const board = await page.evaluate(() => {
          const connection = document.getElementById("connection");
          const notice = document.getElementById("notice");
          const value = (id) => document.getElementById(id).value;
          return {
            connection: connection ? connection.dataset.state : null,
            notice: notice && !notice.hidden ? notice.textContent : null,
            form: {
              category: value("f-category"),
              tag: value("f-tag"),
              min_budget_cents: value("f-min-budget"),
              deadline_after: value("f-deadline-after"),
            },
            // Anything the page might have turned into markup by mistake.
            images: document.querySelectorAll("#board img, #board script").length,
            more: !document.getElementById("more").hidden,
            cards: Array.from(document.querySelectorAll("#board [data-bounty-id]")).map((card) => ({
              id: card.dataset.bountyId,
              status: card.dataset.status,
              version: Number(card.dataset.version),
              close_reason: card.dataset.closeReason || null,
              closed_class: card.classList.contains("closed"),
              title: (card.querySelector(".title") || {}).textContent,
              badge: (card.querySelector(".badge") || {}).textContent,
            })),
          };
        });
        reply({ ok: true, board, problems: await take() });
      } else if (command.op === "quit") {
        reply({ ok: true, problems: await take() });
        break;
      } else {
        reply({ ok: false, error: `unknown op ${command.op}` });
      }
    } catch (error) {
      reply({ ok: false, error: String(error && error.stack ? error.stack : error) });
    }
  }
  await browser.close();
}

main().catch((error) => {
  reply({ ok: false, error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
