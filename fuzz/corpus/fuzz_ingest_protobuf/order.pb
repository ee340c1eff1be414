
pub_x,
o1u1€òÖÊb
od
teatea 2"s