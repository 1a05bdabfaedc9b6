// Drives the dashboard in Debian's Chromium for the Rust test
// crates/ringstore/tests/dashboard.rs, one command per stdin line; each
// answers "ok ..." or "fail ..." on stdout. Every wait has a deadline.
//
// Usage: node dashboard_check.mjs URL_WITH_TOKEN
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = [];
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
await page.goto(url);

const say = (line) => process.stdout.write(line + "\n");
const liveness = (id) => `#nodes tr[data-node="${id}"] td:nth-child(5)`;

async function run(cmd, args) {
  switch (cmd) {
    case "nodes-up": {
      const n = Number(args[0]);
      await page.waitForFunction((n) => [...document.querySelectorAll("#nodes tbody tr td:nth-child(5)")]
        .filter((td) => td.textContent.trim() === "up").length === n, n, { timeout: 15000 });
      return `${n} nodes up`;
    }
    case "liveness": {
      const [id, want, seconds] = args;
      const started = Date.now();
      await page.waitForFunction(([sel, want]) => {
        const td = document.querySelector(sel);
        return td && td.textContent.trim() === want;
      }, [liveness(id), want], { timeout: Number(seconds) * 1000 });
      return `${id} ${want} after ${Date.now() - started} ms`;
    }
    case "join": {
      // The actions view: preview a join of the node at RPC address
      // args[0], then confirm it.
      await page.evaluate(() => { location.hash = "#actions"; });
      await page.selectOption("#action", "join");
      await page.fill("#action-other", args[0]);
      await page.click("#preview");
      await page.waitForSelector("#confirm:not([hidden])", { timeout: 10000 });
      const planned = await page.textContent("#plan");
      await page.click("#confirm");
      await page.waitForFunction(() => document.getElementById("action-result").textContent !== "", null, { timeout: 15000 });
      const result = await page.textContent("#action-result");
      if (!result.startsWith("done")) throw new Error(`join: ${result}`);
      return `${planned.match(/\d+ partitions move/)} then ${result}`;
    }
    case "transfers": {
      await page.evaluate(() => { location.hash = "#transfers"; });
      await page.waitForSelector("#active tr.transfer", { timeout: 60000 });
      const sawActive = (await page.$$("#active tr.transfer")).length;
      await page.waitForFunction(() => document.querySelectorAll("#active tr.transfer").length === 0
        && document.querySelectorAll("#finished tr.finished").length > 0, null, { timeout: 120000 });
      const finished = (await page.$$("#finished tr.finished")).length;
      return `active ${sawActive} seen, ${finished} finished`;
    }
    case "shots": {
      for (const view of ["overview", "ring", "transfers", "traffic", "buckets", "actions"]) {
        await page.evaluate((v) => { location.hash = "#" + v; }, view);
        await page.waitForFunction((v) => !document.getElementById(v).hidden, view, { timeout: 5000 });
        const before = await page.evaluate(() => document.body.dataset.updated);
        await page.waitForFunction((b) => document.body.dataset.updated !== b, before, { timeout: 10000 });
        await page.screenshot({ path: `${args[0]}/${view}.png`, fullPage: false });
      }
      return "6 screenshots";
    }
    case "errors":
      if (errors.length) throw new Error(`console errors: ${errors.join(" | ")}`);
      return "no console errors";
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === "quit") break;
  try {
    say("ok " + (await run(cmd, args)));
  } catch (e) {
    say("fail " + String(e.message || e).replace(/\n/g, " "));
  }
}
await browser.close();
