/// The dashboard's pages as Mustache templates. `{{name}}` escapes HTML; the only `{{{raw}}}` values are the
/// layout's `content` (a page this library rendered) and charts `Charts` drew (its labels escaped).
enum Templates {
    static let all: [String: String] = [
        "layout": layout, "overview": overview, "queues": queues, "queue": queue, "busy": busy, "set": set, "job": job,
        "lookup": lookup, "confirm": confirm, "actions": actions, "message": message, "schedules": schedules,
        "bullmqQueues": bullmqQueues, "bullmqQueue": bullmqQueue, "limits": limits,
    ]

    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Conveyor</title>
        <link rel="stylesheet" href="/assets/app.css">
        <script src="/assets/app.js" defer></script>
        </head>
        <body{{#refresh}} data-refresh="{{refresh}}"{{/refresh}}>
        <header>
        <a class="brand" href="/">Conveyor</a>
        <nav>{{#nav}}<a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}{{#count}} <span class="badge">{{count}}</span>{{/count}}</a>{{/nav}}</nav>
        <form class="lookup" action="/lookup" method="get"><input name="q" placeholder="jid, upload id or post id" aria-label="Look up a job, upload or post"><button>Find</button></form>
        </header>
        {{#readOnly}}<p class="banner">Read-only: actions are disabled.</p>{{/readOnly}}
        {{#flash}}<p class="flash" role="status">{{flash}}</p>{{/flash}}
        <main>
        {{{content}}}
        </main>
        <footer>Conveyor {{version}} · {{redis}} · read {{readAt}}</footer>
        </body>
        </html>
        """

    static let overview = """
        <h1>Overview</h1>
        <section class="cards">
        {{#cards}}<a class="card{{#alert}} alert{{/alert}}" href="{{href}}"><span class="value">{{value}}</span><span class="label">{{label}}</span></a>{{/cards}}
        </section>
        <section>
        <h2>Last hour, per minute</h2>
        <p class="muted">{{rateLine}}</p>
        {{{minuteChart}}}
        <h2>Last 30 days</h2>
        {{{dayChart}}}
        </section>
        <section>
        <h2>Queues</h2>
        <div class="scroll"><table>
        <thead><tr><th>Queue</th><th class="num">Depth</th><th class="num">Latency</th><th>State</th></tr></thead>
        <tbody>
        {{#queues}}<tr><td><a href="{{href}}">{{name}}</a></td><td class="num">{{depth}}</td><td class="num">{{latency}}</td><td>{{#paused}}<span class="tag warn">paused</span>{{/paused}}{{^paused}}running{{/paused}}</td></tr>{{/queues}}
        {{^queues}}<tr><td colspan="4" class="muted">No queues yet.</td></tr>{{/queues}}
        </tbody></table></div>
        </section>
        <section>
        <h2>LLM breakers</h2>
        {{#hasBreakers}}<div class="scroll"><table><thead><tr><th>Provider</th><th>State</th><th class="num">Open for</th><th>Worker</th></tr></thead><tbody>
        {{#breakers}}<tr><td>{{provider}}</td><td><span class="tag{{#bad}} bad{{/bad}}">{{state}}</span></td><td class="num">{{open}}</td><td class="muted">{{source}}</td></tr>{{/breakers}}
        </tbody></table></div>{{/hasBreakers}}
        {{^hasBreakers}}<p class="muted">{{breakerNote}}</p>{{/hasBreakers}}
        <h2>Result writers</h2>
        <p>{{backlogLine}}</p>
        </section>
        """

    static let queues = """
        <h1>Queues</h1>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Queue</th><th class="num">Depth</th><th class="num">Latency</th><th class="num">Finished/min</th><th>State</th><th></th></tr></thead>
        <tbody>
        {{#queues}}<tr>
        <td><a href="{{href}}">{{name}}</a></td><td class="num" data-label="Depth">{{depth}}</td><td class="num" data-label="Latency">{{latency}}</td><td class="num" data-label="Finished/min">{{rate}}</td>
        <td data-label="State">{{#paused}}<span class="tag warn">paused</span>{{/paused}}{{^paused}}{{#unserved}}<span class="tag bad" title="no live worker process fetches from this queue">no worker</span>{{/unserved}}{{^unserved}}running{{/unserved}}{{/paused}}</td>
        <td>{{#actions}}<form method="post" action="{{href}}/{{#paused}}resume{{/paused}}{{^paused}}pause{{/paused}}"><input type="hidden" name="csrf" value="{{csrf}}"><button class="{{#paused}}primary{{/paused}}">{{#paused}}Resume{{/paused}}{{^paused}}Pause{{/paused}}</button></form>{{/actions}}</td>
        </tr>{{/queues}}
        {{^queues}}<tr><td colspan="6" class="muted">No queues yet.</td></tr>{{/queues}}
        </tbody></table></div>
        <p class="muted">{{rateNote}}</p>
        """

    static let queue = """
        <h1>Queue {{name}} {{#paused}}<span class="tag warn">paused</span>{{/paused}}</h1>
        <p>{{depth}} ready jobs · latency {{latency}}
        {{#actions}}<form class="inline" method="post" action="{{base}}/{{#paused}}resume{{/paused}}{{^paused}}pause{{/paused}}"><input type="hidden" name="csrf" value="{{csrf}}"><button class="{{#paused}}primary{{/paused}}">{{#paused}}Resume{{/paused}}{{^paused}}Pause{{/paused}}</button></form>
        <form class="inline" method="post" action="{{base}}/clear"><input type="hidden" name="csrf" value="{{csrf}}"><button class="danger"{{#empty}} disabled{{/empty}}>Delete all</button></form>{{/actions}}</p>
        <div class="scroll"><table class="cards">
        <thead><tr><th>JID</th><th>Class</th><th>Arguments</th><th>Enqueued</th><th></th></tr></thead>
        <tbody>
        {{#jobs}}<tr><td class="mono">{{jid}}</td><td data-label="Class">{{jobClass}}</td><td class="args mono">{{args}}{{#json}} <a href="{{json}}">full JSON</a>{{/json}}</td><td data-label="Enqueued">{{enqueued}}</td>
        <td>{{#actions}}<form method="post" action="{{base}}/delete"><input type="hidden" name="csrf" value="{{csrf}}">{{#member}}<input type="hidden" name="member" value="{{member}}">{{/member}}{{^member}}<input type="hidden" name="jid" value="{{jid}}"><input type="hidden" name="bytes" value="{{bytes}}">{{/member}}<input type="hidden" name="page" value="{{page}}"><button class="danger">Delete</button></form>{{/actions}}</td></tr>{{/jobs}}
        {{^jobs}}<tr><td colspan="5" class="muted">Empty.</td></tr>{{/jobs}}
        </tbody></table></div>
        <nav class="pager">{{#prev}}<a href="{{prev}}">← Newer</a>{{/prev}} <span>{{range}}</span> {{#next}}<a href="{{next}}">Older →</a>{{/next}}</nav>
        """

    static let busy = """
        <h1>Busy</h1>
        <p>{{processCount}} processes · {{busy}} of {{concurrency}} busy</p>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Process</th><th>Host</th><th class="num">PID</th><th>Tag</th><th class="num">Busy</th><th class="num">RSS</th><th>Started</th><th>Last beat</th><th>Queues</th><th></th></tr></thead>
        <tbody>
        {{#processes}}<tr><td class="mono">{{shown}}</td><td data-label="Host">{{host}}</td><td class="num" data-label="PID">{{pid}}</td><td data-label="Tag">{{tag}}</td><td class="num" data-label="Busy">{{busy}}/{{concurrency}}</td><td class="num" data-label="RSS">{{rss}}</td><td data-label="Started">{{started}}</td><td data-label="Last beat">{{beat}}</td><td data-label="Queues">{{queues}}</td>
        <td>{{#quiet}}<span class="tag warn">quiet</span>{{/quiet}}{{#actions}}<form class="inline" method="post" action="/busy/quiet"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="identity" value="{{identity}}"><button{{#quiet}} disabled{{/quiet}}>Quiet</button></form><form class="inline" method="post" action="/busy/stop"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="identity" value="{{identity}}"><button class="danger">Stop</button></form>{{/actions}}</td></tr>{{/processes}}
        {{^processes}}<tr><td colspan="10" class="muted">No live worker processes.</td></tr>{{/processes}}
        </tbody></table></div>
        <h2>Running jobs</h2>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Process</th><th>JID</th><th>Class</th><th>Queue</th><th>Started</th><th>Progress</th><th>Arguments</th>{{#actions}}<th></th>{{/actions}}</tr></thead>
        <tbody>
        {{#running}}<tr><td class="mono">{{process}}</td><td class="mono"><a href="/lookup?q={{jidQuery}}">{{jid}}</a></td><td data-label="Class">{{jobClass}}</td><td data-label="Queue">{{queue}}</td><td data-label="Started">{{started}}</td>
        <td data-label="Progress">{{#progress}}<progress max="100" value="{{percent}}" title="{{detail}} (updated {{updated}})">{{percent}}%</progress> {{percent}}%{{/progress}}{{^progress}}<span class="muted">-</span>{{/progress}}</td>
        <td class="args mono">{{args}}</td>{{#actions}}<td>{{#cancelJID}}<form class="inline" method="post" action="/jobs/cancel"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="jid" value="{{cancelJID}}"><input type="hidden" name="back" value="busy"><button class="danger">Cancel</button></form>{{/cancelJID}}</td>{{/actions}}</tr>{{/running}}
        {{^running}}<tr><td colspan="8" class="muted">Nothing running.</td></tr>{{/running}}
        </tbody></table></div>
        """

    static let set = """
        <h1>{{title}} <span class="badge">{{total}}</span></h1>
        <form class="filters" method="get" action="{{base}}">
        <label>Class <input name="class" value="{{filter.class}}"></label>
        <label>Queue <input name="queue" value="{{filter.queue}}"></label>
        <label>Error <input name="error" value="{{filter.error}}" placeholder="regular expression"></label>
        <label>Since <input name="since" value="{{filter.since}}" placeholder="2h, 7d, ISO 8601"></label>
        <label>Until <input name="until" value="{{filter.until}}"></label>
        <button>Filter</button> {{#filtered}}<a href="{{base}}">Clear</a>{{/filtered}}
        </form>
        {{#problem}}<p class="flash error">{{problem}}</p>{{/problem}}
        <form method="post" action="{{base}}/retry" id="jobs">
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#hidden}}<input type="hidden" name="{{name}}" value="{{value}}">{{/hidden}}
        {{#actions}}<div class="bulk">
        <button name="scope" value="selected" formaction="{{base}}/retry"{{#empty}} disabled{{/empty}}>{{retryLabel}} selected</button>
        <button name="scope" value="selected" formaction="{{base}}/delete" class="danger"{{#empty}} disabled{{/empty}}>Delete selected</button>
        <button name="scope" value="all" formaction="{{base}}/retry"{{#empty}} disabled{{/empty}}>{{retryLabel}} all {{matching}}</button>
        <button name="scope" value="all" formaction="{{base}}/delete" class="danger"{{#empty}} disabled{{/empty}}>Delete all {{matching}}</button>
        </div>{{/actions}}
        <div class="scroll"><table class="cards">
        <thead><tr>{{#actions}}<th><input type="checkbox" class="select-all" aria-label="Select all"></th>{{/actions}}<th>JID</th><th>Class</th><th>Queue</th><th>{{whenLabel}}</th><th>Arguments</th>{{#failures}}<th class="num">Attempts</th><th>Error</th>{{/failures}}{{#actions}}<th></th>{{/actions}}</tr></thead>
        <tbody>
        {{#entries}}<tr>{{#actions}}<td><input type="checkbox" name="jid" value="{{jid}}" aria-label="Select {{jid}}"></td>{{/actions}}
        <td class="mono"><a href="{{href}}">{{jid}}</a></td><td data-label="Class">{{jobClass}}</td><td data-label="Queue">{{queue}}</td><td data-label="{{whenLabel}}"><span title="{{at}}">{{at}}</span> <span class="muted">({{when}})</span></td><td class="args mono" data-label="Arguments">{{args}}</td>{{#failures}}<td class="num" data-label="Attempts">{{attempts}}</td><td class="error oneline">{{error}}</td>{{/failures}}
        {{#actions}}<td class="row-actions"><button name="one" value="{{one}}" formaction="{{base}}/retry">{{retryLabel}}</button><button name="one" value="{{one}}" formaction="{{base}}/delete" class="danger">Delete</button></td>{{/actions}}</tr>{{/entries}}
        {{^entries}}<tr><td colspan="9" class="muted">No jobs{{#filtered}} match{{/filtered}}.</td></tr>{{/entries}}
        </tbody></table></div>
        </form>
        <nav class="pager">{{#prev}}<a href="{{prev}}">{{#filtered}}← Newest{{/filtered}}{{^filtered}}← Newer{{/filtered}}</a>{{/prev}} <span>{{range}}</span> {{#next}}<a href="{{next}}">{{#filtered}}Look further →{{/filtered}}{{^filtered}}Older →{{/filtered}}</a>{{/next}}</nav>
        """

    static let job = """
        <h1>Job <span class="mono">{{jid}}</span></h1>
        <p><a href="{{back}}">← {{setTitle}}</a></p>
        <dl class="facts">
        {{#facts}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/facts}}
        </dl>
        {{#error}}<h2>Error</h2>{{#errorNote}}<p class="muted">{{errorNote}}</p>{{/errorNote}}<pre class="error">{{error}}</pre>{{/error}}
        {{#backtrace}}<h2>Backtrace</h2><pre>{{backtrace}}</pre>{{/backtrace}}
        <h2>Arguments</h2>
        <pre>{{args}}</pre>
        {{#result}}<h2>Result row (conveyor.job_results)</h2><dl class="facts">{{#result}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/result}}</dl>{{/result}}
        {{#actions}}<form method="post" action="{{base}}/retry" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="one" value="{{one}}"><button class="primary">{{retryLabel}}</button></form>
        <form method="post" action="{{base}}/delete" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="one" value="{{one}}"><button class="danger">Delete</button></form>
        {{#cancel}}<form method="post" action="/jobs/cancel" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="jid" value="{{jid}}"><input type="hidden" name="back" value="{{back}}"><button class="danger">Cancel</button></form>{{/cancel}}{{/actions}}
        <h2>Payload</h2>
        {{#cut}}<p class="muted">Cut to its first {{cut}}: <a href="{{json}}">the full JSON</a>.</p>{{/cut}}
        <pre>{{payload}}</pre>
        """

    static let lookup = """
        <h1>Look up</h1>
        <form class="filters" method="get" action="/lookup"><label>JID, upload id or post id <input name="q" value="{{q}}" autofocus></label><button>Find</button></form>
        {{#searched}}{{^found}}<p class="muted">Nothing found for “{{q}}”.</p>{{/found}}{{/searched}}
        {{#progress}}<section><h2>Progress {{#progressStatus}}<span class="tag">{{progressStatus}}</span>{{/progressStatus}}</h2><p><progress max="100" value="{{percent}}">{{percent}}%</progress> {{percent}}% <span class="muted">updated {{updated}}</span></p>{{#detail}}<pre>{{detail}}</pre>{{/detail}}</section>{{/progress}}
        {{#jobs}}<section><h2>Job in {{place}}</h2><dl class="facts">{{#facts}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/facts}}</dl>{{#href}}<p><a href="{{href}}">Open in {{place}}</a></p>{{/href}}
        {{#actions}}{{#cancel}}<form method="post" action="/jobs/cancel" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="jid" value="{{jid}}"><input type="hidden" name="back" value="lookup"><button class="danger">Cancel</button></form>{{/cancel}}{{/actions}}</section>{{/jobs}}
        {{#upload}}<section class="upload"><h2>Upload <span class="mono">{{id}}</span> <span class="tag{{#failed}} bad{{/failed}}">{{status}}</span></h2>
        {{#error}}<pre class="error">{{error}}</pre>{{/error}}
        {{#hasMedia}}<div class="variants">{{#media}}<figure>{{#image}}<img src="{{src}}" alt="{{caption}}" loading="lazy">{{/image}}{{#video}}<video src="{{src}}" controls preload="metadata"></video>{{/video}}{{#audio}}<audio src="{{src}}" controls preload="metadata"></audio>{{/audio}}<figcaption>{{caption}}{{#detail}} <span class="muted">{{detail}}</span>{{/detail}}</figcaption></figure>{{/media}}</div>{{/hasMedia}}
        {{#hasOthers}}<ul>{{#others}}<li class="mono">{{.}}</li>{{/others}}</ul>{{/hasOthers}}
        <dl class="facts">{{#facts}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/facts}}</dl>
        {{#probe}}<details><summary>Probe (raw)</summary><pre>{{probe}}</pre></details>{{/probe}}
        </section>{{/upload}}
        {{#summary}}<section><h2>Summary of post <span class="mono">{{postID}}</span>{{#degraded}} <span class="tag warn">degraded</span>{{/degraded}}</h2>
        <dl class="facts">{{#facts}}<dt>{{name}}</dt><dd>{{value}}</dd>{{/facts}}</dl><blockquote>{{text}}</blockquote></section>{{/summary}}
        {{#notes}}<p class="muted">{{.}}</p>{{/notes}}
        """

    static let confirm = """
        <h1>Confirm</h1>
        <p class="flash warn">{{question}}</p>
        <form method="post" action="{{action}}">
        <input type="hidden" name="csrf" value="{{csrf}}">
        {{#hidden}}<input type="hidden" name="{{name}}" value="{{value}}">{{/hidden}}
        <input type="hidden" name="confirm" value="1">
        {{#replay}}<label>At most <input name="rate" value="{{rate}}" size="8" placeholder="50/s"> (N/s, N/m, N/h; empty: as fast as Redis allows)</label>
        <label><input type="checkbox" name="reset" value="1"> reset attempts</label>{{/replay}}
        <p><button class="{{#replay}}primary{{/replay}}{{^replay}}danger{{/replay}}" id="confirm">{{verb}} {{count}} jobs</button> <a href="{{back}}">Cancel</a></p>
        </form>
        """

    static let actions = """
        <h1>Actions</h1>
        <h2>Bulk runs</h2>
        <div class="scroll"><table><thead><tr><th>#</th><th>Who</th><th>What</th><th>Started</th><th>Progress</th><th>State</th></tr></thead><tbody>
        {{#runs}}<tr><td>{{id}}</td><td>{{who}}</td><td>{{what}}</td><td>{{started}}</td><td class="num">{{done}}/{{matched}}</td><td><span class="tag{{#failed}} bad{{/failed}}">{{state}}</span></td></tr>{{/runs}}
        {{^runs}}<tr><td colspan="6" class="muted">None since this dashboard started.</td></tr>{{/runs}}
        </tbody></table></div>
        <h2>Recent actions</h2>
        <div class="scroll"><table><thead><tr><th>When</th><th>Who</th><th>Via</th><th>What</th></tr></thead><tbody>
        {{#log}}<tr><td>{{at}}</td><td>{{who}}</td><td>{{via}}</td><td>{{what}}</td></tr>{{/log}}
        {{^log}}<tr><td colspan="4" class="muted">None yet.</td></tr>{{/log}}
        </tbody></table></div>
        """

    static let schedules = """
        <h1>Schedules <span class="badge">{{count}}</span></h1>
        <p class="muted">Periodic jobs from the workers' config file (<code>schedules:</code>), kept in Redis in sidekiq-cron's layout. Every worker evaluates them; each tick runs once.</p>
        {{#cluster}}<p class="flash error">Schedules are not supported on a Redis Cluster.</p>{{/cluster}}
        {{#notes}}<p class="flash error">{{.}}</p>{{/notes}}
        <div class="scroll"><table class="cards">
        <thead><tr><th>Name</th><th>Cron</th><th>Class</th><th>Queue</th><th>Status</th><th>Next run</th><th>Last run</th><th>Last job</th><th>Outcome</th>{{#actions}}<th></th>{{/actions}}</tr></thead>
        <tbody>
        {{#schedules}}<tr><td class="mono" title="{{file}}">{{name}}</td><td class="mono" data-label="Cron">{{cron}}{{#unreadable}} <span class="tag bad">unreadable</span>{{/unreadable}}</td><td data-label="Class" title="{{args}}">{{jobClass}}</td><td data-label="Queue">{{queue}}</td>
        <td data-label="Status">{{#enabled}}<span class="tag">enabled</span>{{/enabled}}{{^enabled}}<span class="tag warn">disabled</span>{{/enabled}}</td>
        <td data-label="Next run">{{#next}}{{next}} <span class="muted">({{nextIn}})</span>{{/next}}{{^next}}-{{/next}}</td>
        <td data-label="Last run">{{#last}}{{last}} <span class="muted">{{lastAgo}}</span>{{/last}}{{^last}}never{{/last}}</td>
        <td class="mono" data-label="Last job">{{#lastJID}}<a href="/lookup?q={{lastJIDQuery}}">{{lastJID}}</a>{{/lastJID}}{{^lastJID}}-{{/lastJID}}</td>
        <td data-label="Outcome">{{#outcome}}<span class="tag{{#outcomeBad}} bad{{/outcomeBad}}">{{outcome}}</span>{{/outcome}}{{^outcome}}-{{/outcome}}</td>
        {{#actions}}<td><form class="inline" method="post" action="{{path}}/run"><input type="hidden" name="csrf" value="{{csrf}}"><button>Run now</button></form>{{#enabled}}<form class="inline" method="post" action="{{path}}/disable"><input type="hidden" name="csrf" value="{{csrf}}"><button class="danger">Disable</button></form>{{/enabled}}{{^enabled}}<form class="inline" method="post" action="{{path}}/enable"><input type="hidden" name="csrf" value="{{csrf}}"><button>Enable</button></form>{{/enabled}}</td>{{/actions}}</tr>{{/schedules}}
        {{^schedules}}<tr><td colspan="10" class="muted">No schedules. Declare them under <code>schedules:</code> in the workers' config file.</td></tr>{{/schedules}}
        </tbody></table></div>
        {{#more}}<p class="muted">Only the first 500 schedules are shown; <code>conveyor schedules list --json</code> lists all.</p>{{/more}}
        """

    static let limits = """
        <h1>Limits <span class="badge">{{count}}</span></h1>
        <p class="muted">Per-key concurrency and rate limits from the workers' config file (<code>limits:</code>), checked where jobs are fetched. A job over its key's limit waits in its key's line, not in its queue: <em>Waiting</em> is not in the queues' sizes.</p>
        {{#cluster}}<p class="flash error">Limits are not supported on a Redis Cluster.</p>{{/cluster}}
        <div class="scroll"><table class="cards">
        <thead><tr><th>Name</th><th>Classes</th><th>Key</th><th class="num">Concurrency</th><th>Rate</th><th class="num">Running</th><th class="num">Waiting</th><th class="num">Keys waiting</th></tr></thead>
        <tbody>
        {{#limits}}<tr><td class="mono">{{name}}</td><td data-label="Classes">{{classes}}</td><td class="mono" data-label="Key">{{key}}</td><td class="num" data-label="Concurrency">{{concurrency}}</td><td data-label="Rate">{{rate}}</td>
        <td class="num" data-label="Running">{{running}}</td><td class="num" data-label="Waiting">{{#waiting}}<span class="tag warn">{{waiting}}</span>{{/waiting}}{{^waiting}}0{{/waiting}}</td><td class="num" data-label="Keys waiting">{{keysWaiting}}</td></tr>{{/limits}}
        {{^limits}}<tr><td colspan="8" class="muted">No limits. Declare them under <code>limits:</code> in the workers' config file (docs/jobs.md).</td></tr>{{/limits}}
        </tbody></table></div>
        """

    static let bullmqQueues = """
        <h1>BullMQ queues</h1>
        <p class="muted">The BullMQ queues this deployment serves (<code>CONVEYOR_BULLMQ_QUEUES</code>, prefix <code>{{prefix}}</code>). Ready is what the depth gauge for autoscaling counts: waiting + prioritized + due delayed + paused.</p>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Queue</th><th class="num">Ready</th><th class="num">Waiting</th><th class="num">Prioritized</th><th class="num">Delayed</th><th class="num">Due</th><th class="num">Active</th><th class="num">Paused</th><th class="num">Completed</th><th class="num">Failed</th><th class="num">Stalled</th></tr></thead>
        <tbody>
        {{#queues}}<tr><td><a href="{{path}}">{{name}}</a></td><td class="num" data-label="Ready">{{ready}}</td><td class="num" data-label="Waiting">{{waiting}}</td><td class="num" data-label="Prioritized">{{prioritized}}</td><td class="num" data-label="Delayed">{{delayed}}</td><td class="num" data-label="Due">{{due}}</td><td class="num" data-label="Active">{{active}}</td><td class="num" data-label="Paused">{{paused}}</td><td class="num" data-label="Completed">{{completed}}</td>
        <td class="num" data-label="Failed">{{#failedBad}}<a class="tag bad" href="{{path}}">{{failed}}</a>{{/failedBad}}{{^failedBad}}0{{/failedBad}}</td><td class="num" data-label="Stalled">{{#stalledBad}}<span class="tag warn">{{stalled}}</span>{{/stalledBad}}{{^stalledBad}}0{{/stalledBad}}</td></tr>{{/queues}}
        </tbody></table></div>
        """

    static let bullmqQueue = """
        <h1>BullMQ queue {{name}}</h1>
        <p>{{ready}} ready · {{waiting}} waiting · {{prioritized}} prioritized · {{delayed}} delayed ({{due}} due) · {{activeCount}} active · {{pausedCount}} paused · {{completed}} completed · {{failedCount}} failed</p>
        {{#scriptsProblem}}<p class="flash error">Retrying is unavailable: {{scriptsProblem}}</p>{{/scriptsProblem}}
        <h2>Failed <span class="badge">{{failedCount}}</span>
        {{#actions}}{{#canRetry}}<form class="inline" method="post" action="{{base}}/retry"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="all" value="1"><button class="primary">Retry all</button></form>{{/canRetry}}{{/actions}}</h2>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Id</th><th>Class</th><th>Attempts</th><th>Failed</th><th>Reason</th><th>Data</th>{{#actions}}<th></th>{{/actions}}</tr></thead>
        <tbody>
        {{#failed}}<tr><td class="mono">{{id}}</td><td data-label="Class">{{name}}</td><td data-label="Attempts">{{attempts}}</td><td data-label="Failed" title="{{finished}}">{{ago}}</td><td class="error" data-label="Reason">{{reason}}</td><td class="args mono">{{data}}</td>
        {{#actions}}<td>{{#canRetry}}<form class="inline" method="post" action="{{base}}/retry"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><button>Retry</button></form>{{/canRetry}}</td>{{/actions}}</tr>{{/failed}}
        {{^failed}}<tr><td colspan="7" class="muted">No failed jobs.</td></tr>{{/failed}}
        </tbody></table></div>
        <nav class="pager">{{#prev}}<a href="{{prev}}">← Newer</a>{{/prev}} <span>{{range}}</span> {{#next}}<a href="{{next}}">Older →</a>{{/next}}</nav>
        <h2>Active</h2>
        <p class="muted">A job whose lock is gone is stalled: the next stalled check moves it back to wait, or fails it past <code>maxStalledCount</code>.</p>
        <div class="scroll"><table class="cards">
        <thead><tr><th>Id</th><th>Class</th><th>Started</th><th>Lock</th><th>Worker</th></tr></thead>
        <tbody>
        {{#active}}<tr><td class="mono">{{id}}</td><td data-label="Class">{{name}}</td><td data-label="Started" title="{{started}}">{{ago}}</td><td data-label="Lock">{{#stalled}}<span class="tag warn">stalled</span>{{/stalled}}{{^stalled}}{{lock}} left{{/stalled}}</td><td class="mono" data-label="Worker">{{worker}}</td></tr>{{/active}}
        {{^active}}<tr><td colspan="5" class="muted">Nothing active.</td></tr>{{/active}}
        </tbody></table></div>
        {{#moreActive}}<p class="muted">and {{moreActive}} more active (<code>conveyor bullmq active {{name}} --limit 1000</code>).</p>{{/moreActive}}
        """

    static let message = """
        <h1>{{heading}}</h1>
        <p>{{text}}</p>
        <p><a href="/">Overview</a></p>
        """
}
