-- PATCH /items/<random id> as the bench superuser, who may change any item
-- (args: min_id max_id token json_body). Fixed seeds: both servers patch the same ids.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_seed", threads)
end

function init(args)
  min_id, max_id = tonumber(args[1]), tonumber(args[2])
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  wrk.headers["Content-Type"] = "application/json"
  body = args[4]
  math.randomseed(thread_seed * 7919)
end

function request()
  return wrk.format("PATCH", "/items/" .. math.random(min_id, max_id), nil, body)
end
