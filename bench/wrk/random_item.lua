-- GET /items/<id> with ids drawn uniformly from [min_id, max_id] (args: min_id max_id).
-- Each thread has a fixed seed, so both servers are asked for the same ids.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_seed", threads)
end

function init(args)
  min_id, max_id = tonumber(args[1]), tonumber(args[2])
  math.randomseed(thread_seed * 7919)
end

function request()
  return wrk.format("GET", "/items/" .. math.random(min_id, max_id))
end
