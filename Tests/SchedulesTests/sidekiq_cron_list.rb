# Lists the schedules through sidekiq-cron's own API (Debian's ruby-sidekiq-cron): what Sidekiq Web's Cron tab shows.
#   ruby sidekiq_cron_list.rb -> JSON array of {name, cron, klass, status, last_enqueue_time, args}
require 'sidekiq'
require 'sidekiq/cron/job'
require 'json'

Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch('REDIS_URL') } }
Sidekiq.logger.level = Logger::WARN
jobs = Sidekiq::Cron::Job.all.map do |j|
  { name: j.name, cron: j.cron, klass: j.klass, status: j.status, valid: j.valid?,
    last_enqueue_time: j.last_enqueue_time&.utc&.to_i, args: j.args }
end
puts JSON.generate(jobs)
