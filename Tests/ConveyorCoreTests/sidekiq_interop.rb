# Talks to Conveyor's Redis through Sidekiq's own client and API (Debian's ruby-sidekiq).
#   ruby sidekiq_interop.rb push   -> pushes jobs with Sidekiq::Client, prints their jids as JSON
#   ruby sidekiq_interop.rb read   -> prints what Sidekiq's API reads of the queues, sets, stats, processes
#   ruby sidekiq_interop.rb tools  -> pushes the jobs of the tools scenario (see ProcessTests), prints their jids
#   ruby sidekiq_interop.rb busy   -> prints Sidekiq::Workers: the running jobs of every process
#   ruby sidekiq_interop.rb replay -> "Add to queue" on every scheduled job, "Retry Now" on every retry
#   ruby sidekiq_interop.rb sets   -> prints the retry and dead sets' entries
require 'sidekiq'
require 'sidekiq/api'
require 'json'

Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch('REDIS_URL') } }
Sidekiq.logger.level = Logger::WARN

case ARGV[0]
when 'push'
  ok = Sidekiq::Client.push('class' => 'noop', 'args' => [{ 'upload_id' => 'u1' }], 'queue' => 'interop')
  bad = Sidekiq::Client.push('class' => 'sleep', 'args' => [{ 'ms' => 'soon' }], 'queue' => 'interop')
  slow = Sidekiq::Client.push('class' => 'sleep', 'args' => [{ 'ms' => 5000 }], 'queue' => 'interop')
  later = Sidekiq::Client.push('class' => 'noop', 'args' => [{}], 'queue' => 'interop', 'at' => Time.now.to_f + 1)
  bulk = Sidekiq::Client.push_bulk('class' => 'noop', 'args' => [[{}], [{}], [{}]], 'queue' => 'interop')
  puts JSON.generate(ok: ok, bad: bad, slow: slow, later: later, bulk: bulk,
                     queued: Sidekiq::Queue.new('interop').size, scheduled: Sidekiq::ScheduledSet.new.size)
when 'tools'
  long = Sidekiq::Client.push('class' => 'sleep', 'args' => [{ 'ms' => 60_000 }], 'queue' => 'interop')
  listed = Sidekiq::Client.push('class' => 'noop', 'args' => [1, 2], 'queue' => 'interop')
  discarded = Sidekiq::Client.push('class' => 'sleep', 'args' => [{ 'ms' => 'soon' }], 'queue' => 'interop', 'retry' => false)
  puts JSON.generate(long: long, listed: listed, discarded: discarded)
when 'busy'
  busy = []
  Sidekiq::Workers.new.each { |process, tid, work| busy << { process: process, tid: tid, queue: work['queue'], jid: work['payload']['jid'], run_at: work['run_at'] } }
  puts JSON.generate(busy: busy, size: Sidekiq::Workers.new.size)
when 'replay'
  scheduled = Sidekiq::ScheduledSet.new.to_a
  scheduled.each(&:add_to_queue)
  retries = Sidekiq::RetrySet.new.to_a
  retries.each(&:retry)
  puts JSON.generate(added: scheduled.size, retried: retries.size)
when 'sets'
  entry = ->(e) { { jid: e.jid, class: e.klass, args: e.args, error_class: e['error_class'], retry_count: e['retry_count'] } }
  puts JSON.generate(retry: Sidekiq::RetrySet.new.map(&entry), dead: Sidekiq::DeadSet.new.map(&entry),
                     scheduled: Sidekiq::ScheduledSet.new.size, queued: Sidekiq::Queue.new('interop').size)
when 'read'
  retry_entry = Sidekiq::RetrySet.new.first
  dead_entry = Sidekiq::DeadSet.new.first
  processes = Sidekiq::ProcessSet.new.to_a
  stats = Sidekiq::Stats.new
  puts JSON.generate(
    queue_size: Sidekiq::Queue.new('interop').size,
    queues: Sidekiq::Queue.all.map(&:name),
    retry_size: Sidekiq::RetrySet.new.size,
    retry_jid: retry_entry&.jid, retry_class: retry_entry&.klass, retry_error: retry_entry && retry_entry['error_class'],
    retry_count: retry_entry && retry_entry['retry_count'],
    dead_size: Sidekiq::DeadSet.new.size,
    dead_jid: dead_entry&.jid, dead_error: dead_entry && dead_entry['error_class'],
    processed: stats.processed, failed: stats.failed, retry_stat: stats.retry_size, dead_stat: stats.dead_size,
    processes: processes.map { |p| { identity: p['identity'], concurrency: p['concurrency'], queues: p['queues'], busy: p['busy'] } },
    workers_size: stats.workers_size
  )
end
