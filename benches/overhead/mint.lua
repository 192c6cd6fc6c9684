-- wrk script of benches/overhead.rs (part 2, scenario "mint"): amp-form's urlencoded POST
-- from the AMP cache page without the session cookie, so every request mints a handoff.
-- Every answer must be 200 with AMP-Redirect-To. done() prints one "amp-bench:" line with
-- the counts; the bench fails on any other answer (a ratio of error pages measures nothing).
-- Run with -t1 (one Lua state counts every connection).

wrk.method = "POST"
wrk.path = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example"
wrk.body = "product_id=3&quantity=2&size=M"
-- The layer picks the publisher by Host.
wrk.headers["Host"] = "shop.example"
wrk.headers["Origin"] = "https://shop-example.cdn.ampproject.org"
wrk.headers["Referer"] = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3"
wrk.headers["Sec-Fetch-Site"] = "cross-site"
wrk.headers["Sec-Fetch-Mode"] = "cors"
wrk.headers["Sec-Fetch-Dest"] = "empty"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

mints, bad, first_bad = 0, 0, ""

function response(status, headers, body)
  if status == 200 and headers["amp-redirect-to"] then
    mints = mints + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = (status .. " " .. string.sub(body or "", 1, 200)):gsub("%c", " ")
    end
  end
end

-- setup() and done() run in the main Lua state; the counts live in the threads' states.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local m, b, first = 0, 0, ""
  for _, t in ipairs(threads) do
    m = m + t:get("mints")
    b = b + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  io.write(string.format("amp-bench: mints=%d completes=0 bad=%d first_bad=%s\n", m, b, first))
end
