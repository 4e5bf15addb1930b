/*
 * anthropic — the Anthropic dialect's answer half (anthropic_answer.c), for
 * its adapter (anthropic.c). Private to src/providers/.
 */
#ifndef MERIDIAN_PROVIDERS_ANTHROPIC_H
#define MERIDIAN_PROVIDERS_ANTHROPIC_H

#include "xlate.h"

/* Messages answers and event streams into the conversation model. */
extern const mr_xlate_parser_t mr__anthropic_parser;

#endif
