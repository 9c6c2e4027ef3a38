// Register-only throughput of the instruction pairs of the AVX2 products:
// vpmaddubsw + vpaddw (byte product, 32 MACs each) and vpmaddwd + vpaddd
// (16-bit product, 16 MACs each), on one core.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 6
#define LOOP(MUL, ADD) \
  __m256i a=_mm256_set1_epi8(3),b[N],acc[N]; \
  for(int i=0;i<N;i++){acc[i]=_mm256_setzero_si256();b[i]=_mm256_set1_epi8((char)(i+1));} \
  for(long it=0;it<iters;it++){ \
    _Pragma("GCC unroll 6") for(int i=0;i<N;i++) acc[i]=ADD(acc[i],MUL(a,b[i])); \
    __asm__ volatile("":"+x"(a)); } \
  __m256i s=acc[0];for(int i=1;i<N;i++)s=_mm256_add_epi32(s,acc[i]);return s;
__attribute__((noinline)) static __m256i bytes(long iters){ LOOP(_mm256_maddubs_epi16,_mm256_add_epi16) }
__attribute__((noinline)) static __m256i words(long iters){ LOOP(_mm256_madd_epi16,_mm256_add_epi32) }
int main(int argc,char**argv){
  long iters=argc>1?atol(argv[1]):50000000; double bb=1e9,bw=1e9; volatile int sink=0;
  for(int r=0;r<3;r++){
    double t=now(); __m256i s=bytes(iters); t=now()-t; if(t<bb)bb=t; sink+=_mm256_extract_epi32(s,0);
    t=now(); s=words(iters); t=now()-t; if(t<bw)bw=t; sink+=_mm256_extract_epi32(s,0);
  }
  printf("one core: vpmaddubsw+vpaddw %.1f G MAC/s, vpmaddwd+vpaddd %.1f G MAC/s\n",
    32.0*N*iters/bb/1e9, 16.0*N*iters/bw/1e9);
  return 0;}
