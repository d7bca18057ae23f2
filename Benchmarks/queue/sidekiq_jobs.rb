# The job Sidekiq runs in the drain benchmark: the same no-op Conveyor's `noop` is.
require 'sidekiq'
class NoopJob
  include Sidekiq::Worker
  def perform(*); end
end
