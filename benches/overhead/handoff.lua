-- wrk script of benches/overhead.rs (part 2, scenario "handoff"): mints as mint.lua does,
-- takes the AMP-Redirect-To of each answer and completes it: the top-level GET of its path
-- and query from the cache page, with the session cookie (the script's argument). Fresh
-- links wait in one queue shared by all connections (-t1: one Lua state); a connection
-- with no link waiting mints. Mints must answer 200 with AMP-Redirect-To, completions 303
-- to the cache page's path; done() prints the counts, the bench fails on any other answer.
--
--   wrk -t1 -c32 -d2s -s handoff.lua http://127.0.0.1:PORT/ -- '<Cookie header>'

local mint_path = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example"
local cache_page = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3"
local mint_req, complete_headers

function init(args)
  mint_req = wrk.format("POST", mint_path, {
    ["Host"] = "shop.example",
    ["Origin"] = "https://shop-example.cdn.ampproject.org",
    ["Referer"] = cache_page,
    ["Sec-Fetch-Site"] = "cross-site",
    ["Sec-Fetch-Mode"] = "cors",
    ["Sec-Fetch-Dest"] = "empty",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "product_id=3&quantity=2&size=M")
  complete_headers = {
    ["Host"] = "shop.example",
    ["Referer"] = cache_page,
    ["Sec-Fetch-Site"] = "cross-site",
    ["Sec-Fetch-Mode"] = "navigate",
    ["Sec-Fetch-Dest"] = "document",
    ["Sec-Fetch-User"] = "?1",
    ["Accept"] = "text/html",
    ["Cookie"] = assert(args[1], "the Cookie header is the script's argument"),
  }
end

-- Links minted and not yet completed: queue[head..tail].
local queue, head, tail = {}, 1, 0

function request()
  if head <= tail then
    local pq = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("GET", pq, complete_headers)
  end
  return mint_req
end

mints, completes, bad, first_bad = 0, 0, 0, ""

local function refused(status, body)
  bad = bad + 1
  if first_bad == "" then
    first_bad = (status .. " " .. string.sub(body or "", 1, 200)):gsub("%c", " ")
  end
end

function response(status, headers, body)
  if status == 200 then
    local pq = (headers["amp-redirect-to"] or ""):match("^https?://[^/]+(/.*)$")
    if pq then
      mints = mints + 1
      tail = tail + 1
      queue[tail] = pq
      return
    end
  elseif status == 303 then
    local loc = headers["location"] or ""
    if loc:sub(-#"/products/3") == "/products/3" then
      completes = completes + 1
      return
    end
  end
  refused(status, body)
end

-- setup() and done() run in the main Lua state; the counts live in the threads' states.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local m, c, b, first = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    m = m + t:get("mints")
    c = c + t:get("completes")
    b = b + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  io.write(string.format("amp-bench: mints=%d completes=%d bad=%d first_bad=%s\n", m, c, b, first))
end
