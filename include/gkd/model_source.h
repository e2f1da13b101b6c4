/* A model from any file gkd reads: its own checkpoints (with the tokenizer
 * and the record of the data split they were trained on) and the models
 * other tools write (model_io.h: llama2.c, Hugging Face safetensors), which
 * bring no record and whose tokenizer is read from the files beside them
 * (tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe,
 * tokenizer.bin: subword.h) when there are any. Experiment files
 * (teacher.checkpoint, student.init) and the CLI (--teacher, --student,
 * --model) load through it, so each of them takes every format. */
#ifndef GKD_MODEL_SOURCE_H
#define GKD_MODEL_SOURCE_H

#include "gkd/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Load path into out (a new model, out->owns_model 1): a gkd checkpoint
 *  as gkd_checkpoint_load does, any other format by gkd_model_import with
 *  no task record or optimizer state (out->version 0) and the tokenizer
 *  of gkd_model_source_tokenizer. Errors are those of the loaders; on
 *  error *out is empty. */
int gkd_model_source_load(gkd_checkpoint_data *out, const char *path);

/** The tokenizer files in the directory of an imported model (path itself
 *  when a directory, else the directory holding the file), as a subword
 *  tokenizer; *out NULL when there are none. GKD_EMISMATCH if it has more
 *  tokens than the model's vocab_size (a model's embedding may be padded
 *  beyond its tokenizer, never short of it). */
int gkd_model_source_tokenizer(gkd_tokenizer **out, const char *path, int vocab_size);

/** 0 when a model of vocab_size tokens can be run with tok; otherwise
 *  GKD_EMISMATCH naming what (a key or flag) and path: a model imported
 *  without a tokenizer must have exactly the task tokenizer's vocabulary. */
int gkd_model_source_check_vocab(int vocab_size, const gkd_tokenizer *tok, const char *what,
                                 const char *path);

#ifdef __cplusplus
}
#endif

#endif
