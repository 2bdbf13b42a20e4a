/* fuzz.h — shared by the libFuzzer targets of tests/fuzz (see README.md).
 *
 * Each target defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize). Built two ways: with clang -fsanitize=fuzzer as a
 * fuzzer (build/fuzz/<target>), and with replay.c's main() as a plain
 * ASan+UBSan program that runs every file of the corpus and of the crashes
 * (build/fuzz-replay/<target>, the regression test).
 *
 * Token placeholders: a fuzz input cannot forge a signature, so the text
 * "@T0".."@T9" in an input is replaced by a real token (fuzz_expand) before
 * the code under test sees it; see fuzz_tokens.c for who each one is. */
#ifndef OMS_FUZZ_H
#define OMS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth/auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: print and abort (the fuzzer keeps
 * the input as a crash). */
#define FUZZ_CHECK(cond, ...)                                                    \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s: ", __FILE__,    \
                    __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* The HS256 secret every placeholder token but @T6 is signed with. */
#define FUZZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret-0123"

#define FUZZ_NTOKENS 10

/* Mint the placeholder tokens (once; now_s: their iat). */
void fuzz_tokens_init(int64_t now_s);
/* Placeholder i (0..9): the token text. */
const char *fuzz_token(int i);
/* An HS256 verifier for FUZZ_SECRET (leeway 5 s), made by fuzz_tokens_init. */
const oms_auth *fuzz_auth(void);
/* A malloc'd NUL-terminated copy of data with every "@T<digit>" replaced
 * by its token; *len gets the length (the copy may hold NULs). */
char *fuzz_expand(const uint8_t *data, size_t size, size_t *len);

#endif
