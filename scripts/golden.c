// Golden logits of a model from llama.cpp, format "llama.cpp-golden-v1" (see
// inference/tests/data/golden/README.md); scripts/make-golden.sh builds and runs this and wraps
// its output (names, texts, settings) into the committed JSON.
//
// For each prompt: llama_tokenize(add_special=true, parse_special=true), the whole prompt in one
// llama_decode, statistics and the top 20 of the last position's logits, then N_GEN greedy steps
// (argmax of the raw logits, ties to the lowest id, each token fed back alone; end-of-generation
// tokens do not stop it) with each step's top-1 logit and its margin over the second.
// F32 KV cache, flash attention off, 1 thread, n_ctx 512.
//
// usage: golden MODEL PROMPTS_FILE   (one prompt per line: the UTF-8 text in hex)
// prints one JSON object: {desc, n_params, n_vocab, add_bos, bos_id, eos_id, prompts: [...]}.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define N_GEN 32
#define MAX_TOK 4096

static int argmax(const float * l, int n, float * margin) {
    int best = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[best]) best = i;
    float second = -INFINITY;
    for (int i = 0; i < n; i++) if (i != best && l[i] > second) second = l[i];
    if (margin) *margin = l[best] - second;
    return best;
}

static void print_hex(const unsigned char * b, int n) {
    putchar('"');
    for (int i = 0; i < n; i++) printf("%02x", b[i]);
    putchar('"');
}

// The bytes of a token (special tokens spelled out), returned in `buf`.
static int piece(const struct llama_vocab * v, llama_token t, char * buf, int cap) {
    int n = llama_token_to_piece(v, t, buf, cap, 0, true);
    if (n < 0) { fprintf(stderr, "piece of %d does not fit\n", t); exit(1); }
    return n;
}

static void last_logits(const float * l, int n) {
    double mx = -INFINITY, mn = INFINITY, sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        if (l[i] > mx) mx = l[i];
        if (l[i] < mn) mn = l[i];
        sum += l[i];
        sq += (double) l[i] * l[i];
    }
    printf("{\"argmax\": %d, \"max\": %.9g, \"min\": %.9g, \"mean\": %.9g, \"l2\": %.9g, \"sum\": %.9g, \"top20\": [",
           argmax(l, n, NULL), mx, mn, sum / n, sqrt(sq), sum);
    int idx[20];
    for (int j = 0; j < 20; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int used = 0;
            for (int m = 0; m < j; m++) if (idx[m] == i) used = 1;
            if (!used && (best < 0 || l[i] > l[best])) best = i;
        }
        idx[j] = best;
        printf("%s[%d, %.9g]", j ? ", " : "", best, l[best]);
    }
    printf("]}");
}

static int unhex(const char * s, char * out) {
    int n = 0;
    unsigned int b;
    while (s[0] && s[1] && sscanf(s, "%2x", &b) == 1) { out[n++] = (char) b; s += 2; }
    out[n] = 0;
    return n;
}

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL PROMPTS_FILE\n", argv[0]); return 1; }
    FILE * f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 1; }

    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    char desc[256];
    llama_model_desc(model, desc, sizeof desc);
    printf("{\"desc\": \"%s\", \"n_params\": %llu, \"n_vocab\": %d, \"add_bos\": %s, \"bos_id\": %d, \"eos_id\": %d, \"prompts\": [\n",
           desc, (unsigned long long) llama_model_n_params(model), n_vocab,
           llama_vocab_get_add_bos(vocab) ? "true" : "false", llama_vocab_bos(vocab), llama_vocab_eos(vocab));

    static char line[1 << 16], text[1 << 15], buf[1024];
    static llama_token toks[MAX_TOK];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        int len = unhex(line, text);
        int n = llama_tokenize(vocab, text, len, toks, MAX_TOK, true, true);
        if (n < 0) { fprintf(stderr, "prompt too long\n"); return 1; }

        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 512;
        cp.n_batch = 512;
        cp.n_ubatch = 512;
        cp.n_threads = 1;
        cp.n_threads_batch = 1;
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        struct llama_context * ctx = llama_init_from_model(model, cp);
        if (!ctx) return 1;

        printf("%s{\"bos_added\": %s, \"tokens\": [", first ? "" : ",\n",
               n > 0 && toks[0] == llama_vocab_bos(vocab) ? "true" : "false");
        first = 0;
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
        printf("], \"token_pieces_hex\": [");
        for (int i = 0; i < n; i++) {
            int k = piece(vocab, toks[i], buf, sizeof buf);
            if (i) printf(", ");
            print_hex((unsigned char *) buf, k);
        }
        printf("], \"last_logits\": ");
        if (llama_decode(ctx, llama_batch_get_one(toks, n)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * l = llama_get_logits_ith(ctx, -1);
        last_logits(l, n_vocab);

        llama_token gen[N_GEN];
        float top1[N_GEN], margin[N_GEN];
        int eog = -1;
        for (int i = 0; i < N_GEN; i++) {
            gen[i] = argmax(l, n_vocab, &margin[i]);
            top1[i] = l[gen[i]];
            if (eog < 0 && llama_vocab_is_eog(vocab, gen[i])) eog = i;
            if (i + 1 < N_GEN) {
                if (llama_decode(ctx, llama_batch_get_one(&gen[i], 1)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
                l = llama_get_logits_ith(ctx, -1);
            }
        }
        printf(", \"greedy\": {\"tokens\": [");
        for (int i = 0; i < N_GEN; i++) printf("%s%d", i ? ", " : "", gen[i]);
        printf("], \"text_hex\": \"");
        for (int i = 0; i < N_GEN; i++) {
            int k = piece(vocab, gen[i], buf, sizeof buf);
            for (int j = 0; j < k; j++) printf("%02x", (unsigned char) buf[j]);
        }
        printf("\", \"first_eog_index\": %d, \"top1_logit\": [", eog);
        for (int i = 0; i < N_GEN; i++) printf("%s%.9g", i ? ", " : "", top1[i]);
        printf("], \"top1_minus_top2\": [");
        for (int i = 0; i < N_GEN; i++) printf("%s%.9g", i ? ", " : "", margin[i]);
        printf("]}}");
        llama_free(ctx);
    }
    printf("\n]}\n");
    fclose(f);
    llama_model_free(model);
    return 0;
}
