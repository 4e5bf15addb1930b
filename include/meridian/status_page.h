/*
 * status_page — the HTML of GET /status (src/status_page.html), compiled
 * into the binary at build time (cmake/embed.cmake). Static, read-only,
 * any thread. The page fetches status.json (status.h) every few seconds.
 */
#ifndef MERIDIAN_STATUS_PAGE_H
#define MERIDIAN_STATUS_PAGE_H

#include <stddef.h>

extern const unsigned char mr_status_page_html[];
extern const size_t mr_status_page_html_len;

#endif
