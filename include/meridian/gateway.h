/*
 * gateway — the life of one client request: endpoint dispatch, input
 * validation, routing, upstream attempts with failover, and the response
 * (buffered or streamed) back through MHD.
 *
 * Each request context (mr_request_t) is created on MHD's first call for a
 * connection's request, owned by that MHD connection through *con_cls, and
 * freed after MHD reports completion (plus one loop turn for its uv handles
 * to close). Everything runs on the owning worker's loop thread.
 */
#ifndef MERIDIAN_GATEWAY_H
#define MERIDIAN_GATEWAY_H

#include <microhttpd.h>

typedef struct mr_worker mr_worker_t;

/* MHD_AccessHandlerCallback; cls is the mr_worker_t. */
enum MHD_Result mr_gateway_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls);
/* MHD_RequestCompletedCallback; cls is the mr_worker_t. */
void mr_gateway_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
/* Drain deadline reached: abort every in-flight request of the worker (upstream
 * transfers cancelled, suspended connections resumed so MHD closes them). */
void mr_gateway_abort_all(mr_worker_t *w);

#endif
