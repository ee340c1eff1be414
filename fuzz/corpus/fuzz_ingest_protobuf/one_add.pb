
pub_x<
a1u1€òÖÊ"
phone13800001001R
cardsgs"u0*c