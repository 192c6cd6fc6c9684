// Offline stand-in for the AMP runtime and amp-form, for machines that cannot reach
// cdn.ampproject.org (`cargo run --example shop -- --offline`).
//
// It mirrors what amp-form does (amphtml extensions/amp-form/0.1/amp-form.js, see
// AMP-NOTES.md "amp-form") for the one thing the shop needs: submit a form[action-xhr]
// and follow AMP-Redirect-To. It is not the AMP runtime: no validation UI, no analytics,
// and its "templates" only substitute {{name}} with a top-level field of the JSON answer.
//
// What it did is appended to `window.__ampFormLog` (submit, response, redirect or why not,
// done), so that tests/browser.rs can check each rule in a real browser.
(function () {
  'use strict';

  var log = window.__ampFormLog = window.__ampFormLog || [];
  function record(entry) {
    log.push(entry);
  }

  // The AMP boilerplate CSS hides <body> until the runtime starts; we are the runtime here.
  function reveal() {
    document.body.style.animation = 'none';
    document.body.style.visibility = 'visible';
  }

  function hostnameOf(host) {
    return host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '').toLowerCase();
  }

  function isLocalName(hostname) {
    return hostname === 'localhost' || hostname === '127.0.0.1' ||
      hostname.endsWith('.localhost');
  }

  // The publisher origin, as the runtime computes it for __amp_source_origin (src/url.js
  // getSourceOrigin): on a cache page from the `/c/s/<host>/...` (https) or `/c/<host>/...`
  // (http) path, elsewhere the page's own origin. Two deviations, both for the local cache:
  // the real runtime reads the path only on known cache origins (cdn.ampproject.org, ...),
  // not on cache.localhost; and it maps `/c/s/` to https, while the local shop serves its
  // plain-http origin under `/c/s/`, so localhost names keep http here.
  function sourceOrigin() {
    var m = /^\/c\/(s\/)?([^/]+)/.exec(location.pathname);
    if (!m) {
      return location.origin;
    }
    var host = decodeURIComponent(m[2]);
    var https = Boolean(m[1]) && !isLocalName(hostnameOf(host));
    return (https ? 'https://' : 'http://') + host;
  }

  // assertHttpsUrl: https, or a localhost name (which browsers treat as secure).
  function isSecureUrl(url) {
    return url.protocol === 'https:' || isLocalName(url.hostname);
  }

  // Shows the submit-success / submit-error template, with {{field}} from the JSON answer.
  function render(form, state, json) {
    form.classList.remove('amp-form-submitting');
    form.classList.add('amp-form-' + state);
    var box = form.querySelector('[' + state + ']');
    var template = box && box.querySelector('template');
    if (!template) {
      return;
    }
    // Sections: {{#key}}...{{/key}} when the field is truthy, {{^key}}...{{/key}} when not.
    var source = template.content.textContent.replace(
      /\{\{([#^])\s*(\w+)\s*\}\}([\s\S]*?)\{\{\/\s*\2\s*\}\}/g,
      function (_, kind, key, inner) {
        var on = Boolean(json && json[key]);
        return (kind === '#') === on ? inner : '';
      }
    );
    var text = source.replace(/\{\{\s*(\w+)\s*\}\}/g, function (_, key) {
      var value = json && json[key];
      return value === undefined || value === null ? '' : String(value);
    });
    var out = box.querySelector('[i-amphtml-rendered]');
    if (!out) {
      out = document.createElement('div');
      out.setAttribute('i-amphtml-rendered', '');
      box.appendChild(out);
    }
    out.textContent = text.trim(); // text, never HTML: the answer is data
  }

  function refuseRedirect(reason, value) {
    console.error('amp-form: AMP-Redirect-To ' + reason + ':', value);
    record({ type: 'redirect-refused', reason: reason, value: value });
  }

  // maybeHandleRedirect_: runs after success AND after error answers.
  function maybeRedirect(form, response) {
    // Cross-origin, this is readable only when the server lists the header in
    // Access-Control-Expose-Headers ("works on origin, silent on the cache"): an unexposed
    // header looks exactly like no header.
    var value = response.headers.get('AMP-Redirect-To');
    if (!value) {
      record({ type: 'no-redirect' });
      return;
    }
    if ((form.getAttribute('target') || '_top') === '_blank') {
      refuseRedirect('needs target=_top, not _blank', value);
      return;
    }
    var url;
    try {
      url = new URL(value); // absolute only: no base URL
    } catch (e) {
      url = null;
    }
    if (!url || !/^https?:$/.test(url.protocol)) {
      refuseRedirect('must be an absolute http(s) URL', value);
      return;
    }
    if (!isSecureUrl(url)) {
      refuseRedirect('must be https (or a localhost name)', value);
      return;
    }
    record({ type: 'redirect', url: url.href });
    // The top window: in an AMP viewer the page is in an iframe.
    window.top.location.href = url.href;
  }

  // The page's path on the publisher origin, as the runtime's SOURCE_PATH gives it: on a
  // cache page the path after `/c/s/<host>` or `/c/<host>`, elsewhere the page's own path.
  function sourcePath() {
    var m = /^\/c\/(?:s\/)?[^/]+(\/.*)?$/.exec(location.pathname);
    return m ? (m[1] || '/') : location.pathname;
  }

  // The page's URL on the publisher origin, as the runtime's SOURCE_URL gives it (amphtml
  // src/url.js getSourceUrl): on a cache page the origin rebuilt from `/c/s/<host>`, the
  // path after it and the query without the runtime's own parameters; elsewhere the page's
  // own URL. Without the fragment.
  function sourceUrl() {
    var search = location.search.replace(/[?&](amp_(js[^&=]*|gsa|r|kit)|usqp)\b[^&]*/g, '');
    search = search.replace(/^[?&]/, '');
    var onCache = /^\/c\//.test(location.pathname);
    if (!onCache) {
      return location.href.split('#')[0];
    }
    return sourceOrigin() + sourcePath() + (search ? '?' + search : '');
  }

  // Variable substitution in hidden inputs that opt in with data-amp-replace (amp-form's
  // getVarSubsFields_). Only SOURCE_URL and SOURCE_PATH, the ones the shop uses; the real
  // runtime fills them in percent-encoded, so this does too.
  function substitute(form) {
    var fields = form.querySelectorAll('input[type="hidden"][data-amp-replace]');
    Array.prototype.forEach.call(fields, function (input) {
      var allowed = input.getAttribute('data-amp-replace').split(/\s+/);
      if (allowed.indexOf('SOURCE_URL') >= 0 && input.value === 'SOURCE_URL') {
        input.value = encodeURIComponent(sourceUrl());
      }
      if (allowed.indexOf('SOURCE_PATH') >= 0 && input.value === 'SOURCE_PATH') {
        input.value = encodeURIComponent(sourcePath());
      }
    });
  }

  function submit(form) {
    substitute(form);
    var method = (form.getAttribute('method') || 'GET').toUpperCase();
    var action = new URL(form.getAttribute('action-xhr'), location.href);
    // getCorsUrl: every action-xhr request names the publisher origin (a hint, not proof).
    action.searchParams.append('__amp_source_origin', sourceOrigin());
    var data = new FormData(form);
    var init = {
      method: method,
      credentials: 'include', // the origin's cookie goes along when the browser allows it
      headers: { 'Accept': 'application/json' },
    };
    var encoding;
    if (method === 'GET' || method === 'HEAD') {
      encoding = 'query';
      data.forEach(function (value, key) {
        action.searchParams.append(key, value);
      });
    } else {
      var enctype = (form.getAttribute('enctype') || '').toLowerCase();
      // FormData is sent as multipart/form-data, amp-form's default encoding; a
      // URLSearchParams body as application/x-www-form-urlencoded.
      encoding = enctype === 'application/x-www-form-urlencoded' ? 'urlencoded' : 'multipart';
      init.body = encoding === 'urlencoded' ? new URLSearchParams(data) : data;
    }
    // Only when the page and the endpoint share an origin (never from the cache). A custom
    // header cross-origin would also cost a CORS preflight, which AMP CORS never needs.
    var sameOrigin = action.origin === location.origin;
    if (sameOrigin) {
      init.headers['AMP-Same-Origin'] = 'true';
    }
    record({ type: 'submit', method: method, url: action.href, encoding: encoding,
      sameOrigin: sameOrigin });
    form.classList.remove('amp-form-submit-success', 'amp-form-submit-error');
    form.classList.add('amp-form-submitting');
    return fetch(action.href, init).then(function (response) {
      record({ type: 'response', status: response.status });
      // amp-form leaves the state alone when a 2xx answer is not JSON; the stand-in shows
      // the template with empty fields instead. Either way the redirect is still handled.
      return response.json().catch(function () {
        return {};
      }).then(function (json) {
        var state = response.ok ? 'submit-success' : 'submit-error';
        render(form, state, json);
        maybeRedirect(form, response);
        record({ type: 'done', state: state });
      });
    }, function (error) {
      // No answer at all (network error, CORS refusal): nothing to redirect with.
      record({ type: 'network-error', message: String(error) });
      render(form, 'submit-error', { error: String(error) });
      record({ type: 'done', state: 'submit-error' });
    });
  }

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('action-xhr')) {
      return;
    }
    event.preventDefault();
    // amp-form ignores submits while one is in flight.
    if (form.classList.contains('amp-form-submitting')) {
      return;
    }
    // amp-form will not take on a form with an input named like the runtime's own
    // parameters (a user error at set-up); the stand-in refuses to send it.
    if (form.querySelector('[name=__amp_source_origin],[name=__amp_form_verify]')) {
      console.error('amp-form: illegal input name __amp_source_origin or __amp_form_verify');
      record({ type: 'refused', reason: 'illegal input name' });
      return;
    }
    submit(form);
  }, true);

  if (document.body) {
    reveal();
  } else {
    document.addEventListener('DOMContentLoaded', reveal);
  }
})();
