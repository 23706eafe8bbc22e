-- POST /items as the bench superuser (args: token json_body). The same body every time:
-- the request is formatted once, so wrk spends no Lua time per request.
function init(args)
  wrk.method = "POST"
  wrk.path = "/items"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = args[2]
end
