# Pre-enqueues N jobs of CLASS on queue `default` with Sidekiq::Client.push_bulk (1,000 per round trip).
#   ruby enqueue.rb CLASS N
require 'sidekiq'
# redis-rb 4.x warns on every SADD Sidekiq 6.4 makes; the return value is not used here.
Redis.sadd_returns_boolean = false if Redis.respond_to?(:sadd_returns_boolean=)
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch('REDIS_URL'), size: 1 } }
klass, n = ARGV[0], Integer(ARGV[1])
left = n
while left > 0
  batch = [left, 1000].min
  Sidekiq::Client.push_bulk('class' => klass, 'args' => Array.new(batch) { [{}] }, 'queue' => 'default')
  left -= batch
end
