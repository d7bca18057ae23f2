# Pushes N jobs one at a time onto an idle worker's queue, waiting for each to be taken before the next,
# so every pickup starts from idle (the worker logs latency_ms = start - enqueued_at).
#   ruby trickle.rb CLASS N
require 'sidekiq'
# redis-rb 4.x warns on every SADD Sidekiq 6.4 makes; the return value is not used here.
Redis.sadd_returns_boolean = false if Redis.respond_to?(:sadd_returns_boolean=)
require 'redis'
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch('REDIS_URL'), size: 1 } }
redis = Redis.new(url: ENV.fetch('REDIS_URL'))
klass, n = ARGV[0], Integer(ARGV[1])
n.times do
  before = redis.get('stat:processed').to_i
  Sidekiq::Client.push('class' => klass, 'args' => [{}], 'queue' => 'default')
  deadline = Time.now + 5
  sleep 0.001 while redis.get('stat:processed').to_i == before && Time.now < deadline
  sleep 0.02 # let the worker go idle again
end
