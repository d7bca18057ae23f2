/// The stylesheet and the one small script, served from the binary (`/assets/…`): the pages work offline and
/// the CSP allows no inline code.
enum Assets {
    static let css = """
        :root { --fg:#1d232b; --muted:#66707c; --line:#dde2e8; --bg:#f6f7f9; --card:#fff; --accent:#2457c5; --ok:#2f8f4e; --bad:#c23b32; --warn:#b7791f; }
        * { box-sizing: border-box; }
        body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
        header { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1rem; padding:.6rem 1rem; background:#18202b; color:#fff; }
        header a { color:#cfd8e3; text-decoration:none; padding:.2rem .4rem; border-radius:4px; }
        header a[aria-current] { background:#2d3a4b; color:#fff; }
        .brand { font-weight:700; color:#fff; }
        nav { display:flex; flex-wrap:wrap; gap:.2rem; }
        .lookup { margin-left:auto; display:flex; gap:.3rem; }
        .lookup input { width:14rem; max-width:50vw; }
        main { padding:1rem; max-width:1200px; margin:0 auto; }
        footer { color:var(--muted); font-size:12px; padding:1rem; text-align:center; }
        h1 { font-size:1.4rem; margin:.2rem 0 1rem; } h2 { font-size:1.1rem; margin:1.4rem 0 .5rem; }
        section.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(9.5rem, 1fr)); gap:.6rem; }
        .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.7rem; text-decoration:none; color:inherit; display:flex; flex-direction:column; }
        .card .value { font-size:1.4rem; font-weight:600; } .card .label { color:var(--muted); font-size:.85rem; }
        .card.alert { border-color:var(--bad); } .card.alert .value { color:var(--bad); }
        .scroll { overflow-x:auto; background:var(--card); border:1px solid var(--line); border-radius:8px; }
        table { border-collapse:collapse; width:100%; }
        th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
        th { font-size:.8rem; color:var(--muted); font-weight:600; white-space:nowrap; }
        .num { text-align:right; font-variant-numeric:tabular-nums; }
        .mono, pre { font-family:ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:.85rem; }
        .args { max-width:28rem; overflow-wrap:anywhere; } .error { color:var(--bad); overflow-wrap:anywhere; max-width:30rem; }
        pre { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:.7rem; overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; }
        pre.error { max-width:none; }
        .muted { color:var(--muted); }
        td.oneline { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:28em; }
        progress { width:7em; height:.8em; vertical-align:middle; accent-color:var(--ok); }
        .badge { display:inline-block; min-width:1.4em; padding:0 .35em; border-radius:1em; background:#4b5a6e; color:#fff; font-size:.75rem; text-align:center; }
        h1 .badge { background:var(--muted); vertical-align:middle; }
        .tag { display:inline-block; padding:0 .45em; border-radius:4px; background:#e3f1e7; color:var(--ok); font-size:.8rem; }
        .tag.warn { background:#fbf0dc; color:var(--warn); } .tag.bad { background:#f8e1df; color:var(--bad); }
        button { font:inherit; padding:.3rem .7rem; border:1px solid #b9c2cd; border-radius:5px; background:#fff; cursor:pointer; }
        button:hover { border-color:var(--accent); }
        button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
        button.danger { color:var(--bad); border-color:#e2b5b1; }
        button[disabled] { opacity:.5; cursor:default; }
        input { font:inherit; padding:.25rem .4rem; border:1px solid #b9c2cd; border-radius:5px; }
        form.inline { display:inline; margin:0 .2rem; }
        .filters { display:flex; flex-wrap:wrap; gap:.5rem .8rem; align-items:flex-end; margin-bottom:.8rem; }
        .filters label { display:flex; flex-direction:column; font-size:.8rem; color:var(--muted); }
        .bulk { display:flex; flex-wrap:wrap; gap:.4rem; margin:.4rem 0 .6rem; }
        .row-actions { white-space:nowrap; } .row-actions button { margin-right:.3rem; }
        .pager { display:flex; gap:1rem; justify-content:center; margin:.8rem 0; }
        .flash { background:#e8effc; border:1px solid #bcd0f3; padding:.5rem .8rem; border-radius:6px; }
        .flash.warn { background:#fbf0dc; border-color:#ecd3a4; } .flash.error { background:#f8e1df; border-color:#eab8b3; color:var(--bad); }
        .banner { margin:0; padding:.4rem 1rem; background:#fbf0dc; color:var(--warn); text-align:center; }
        .facts { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:.7rem; }
        .facts dt { color:var(--muted); } .facts dd { margin:0; overflow-wrap:anywhere; }
        .variants { display:flex; flex-wrap:wrap; gap:.8rem; }
        .variants figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:6px; padding:.4rem; }
        .variants img, .variants video { display:block; max-width:min(320px, 80vw); height:auto; }
        .variants audio { display:block; width:min(320px, 80vw); }
        .variants figcaption { font-size:.8rem; color:var(--muted); }
        blockquote { background:var(--card); border-left:4px solid var(--accent); margin:0; padding:.6rem 1rem; }
        .chart { width:100%; height:auto; background:var(--card); border:1px solid var(--line); border-radius:8px; }
        .chart .ok { fill:var(--ok); } .chart .fail { fill:var(--bad); } .chart .none { fill:var(--line); }
        .chart .axis { stroke:#aab3be; stroke-width:1; } .chart .tick { font-size:13px; fill:var(--muted); } .chart text.fail { fill:var(--bad); }
        @media (max-width: 640px) {
          header { padding:.5rem; } .lookup { margin-left:0; width:100%; } .lookup input { flex:1; max-width:none; }
          main { padding:.6rem; } th, td { padding:.35rem .4rem; } .args, .error { max-width:14rem; }
          section.cards { grid-template-columns:repeat(2, 1fr); }
          .filters label { flex:1 1 40%; } .filters input { width:100%; }
          table.cards thead { display:none; }
          table.cards tr { display:block; border-bottom:1px solid var(--line); padding:.35rem 0; }
          table.cards td { display:block; border:0; padding:.1rem .6rem; max-width:none; text-align:left; }
          table.cards td:empty { display:none; }
          table.cards td[data-label]::before { content:attr(data-label) ": "; color:var(--muted); font-size:.8rem; }
          table.cards td input[type=checkbox] { float:left; margin:.2rem .5rem 0 0; }
          table.cards td.row-actions { padding-top:.3rem; }
        }
        """

    /// "Select all" for the bulk checkboxes, and no auto-refresh while the operator is typing or has ticked a box.
    static let js = """
        document.addEventListener('DOMContentLoaded', function () {
          document.querySelectorAll('.select-all').forEach(function (box) {
            box.addEventListener('change', function () {
              box.closest('form').querySelectorAll('input[name=jid]').forEach(function (b) { b.checked = box.checked; });
            });
          });
          var seconds = parseInt(document.body.getAttribute('data-refresh') || '0', 10);
          if (seconds > 0) {
            var timer = setTimeout(function () { location.reload(); }, seconds * 1000);
            var stop = function () { clearTimeout(timer); };
            document.addEventListener('input', stop);
            document.addEventListener('change', stop);
            document.addEventListener('focusin', function (e) { if (e.target.matches('input')) { stop(); } });
          }
        });
        """
}
