// Offline stand-in for the AMP runtime and amp-form, for machines that cannot reach
// cdn.ampproject.org (`cargo run --example shop -- --offline`).
//
// It mirrors what amp-form does (amphtml extensions/amp-form/0.1/amp-form.js, see
// AMP-NOTES.md "amp-form") for the one thing the shop needs: submit a form[action-xhr]
// and follow AMP-Redirect-To. It is not the AMP runtime: no validation UI, no analytics,
// and its "templates" only substitute {{name}} with a top-level field of the JSON answer.
(function () {
  'use strict';

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
    var text = template.content.textContent.replace(/\{\{\s*(\w+)\s*\}\}/g, function (_, key) {
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

  // maybeHandleRedirect_: runs after success AND after error answers.
  function maybeRedirect(form, response) {
    // Cross-origin, this is readable only when the server lists the header in
    // Access-Control-Expose-Headers ("works on origin, silent on the cache").
    var value = response.headers.get('AMP-Redirect-To');
    if (!value) {
      return false;
    }
    if ((form.getAttribute('target') || '_top') === '_blank') {
      console.error('amp-form: AMP-Redirect-To needs target=_top, not _blank');
      return false;
    }
    var url;
    try {
      url = new URL(value); // absolute only: no base URL
    } catch (e) {
      url = null;
    }
    if (!url || !/^https?:$/.test(url.protocol) || !isSecureUrl(url)) {
      console.error('amp-form: AMP-Redirect-To must be an absolute https URL, got', value);
      return false;
    }
    window.top.location.href = url.href;
    return true;
  }

  function submit(form) {
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
    if (method === 'GET' || method === 'HEAD') {
      data.forEach(function (value, key) {
        action.searchParams.append(key, value);
      });
    } else {
      var enctype = (form.getAttribute('enctype') || '').toLowerCase();
      // FormData is sent as multipart/form-data, amp-form's default encoding.
      init.body = enctype === 'application/x-www-form-urlencoded' ? new URLSearchParams(data) : data;
    }
    // Only when the page and the endpoint share an origin (never from the cache).
    if (action.origin === location.origin) {
      init.headers['AMP-Same-Origin'] = 'true';
    }
    form.classList.remove('amp-form-submit-success', 'amp-form-submit-error');
    form.classList.add('amp-form-submitting');
    return fetch(action.href, init).then(function (response) {
      return response.json().catch(function () {
        return {};
      }).then(function (json) {
        render(form, response.ok ? 'submit-success' : 'submit-error', json);
        maybeRedirect(form, response);
      });
    }, function (error) {
      render(form, 'submit-error', { error: String(error) });
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
    submit(form);
  }, true);

  if (document.body) {
    reveal();
  } else {
    document.addEventListener('DOMContentLoaded', reveal);
  }
})();
